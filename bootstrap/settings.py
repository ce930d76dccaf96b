"""The bootstrap stack's configuration (bootstrap/Pulumi.ci.yaml), validated up front."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bootstrap.policies import GitHubRepository

NAMESPACE = "scones-bootstrap"
STACKS = ("dev", "prod")
# configure-aws-credentials asks for 1 hour unless told otherwise, and a role allows at most
# its MaxSessionDuration (README at e6de054: role-duration-seconds "Defaults to 1 hour (3600
# seconds). Acceptable values range from 15 minutes (900 seconds) to 12 hours (43200
# seconds)"; IAM API reference, CreateRole MaxSessionDuration: 3600 to 43200, default 3600).
# Deploy jobs run up to 120 minutes (deploy.yml timeout-minutes), so both are raised to that.
DEPLOY_SESSION_SECONDS = 7200


class BootstrapConfigError(ValueError):
    """A bootstrap config value is missing or wrong; the message names the key."""


@dataclass(frozen=True)
class AwsAccount:
    """Where one stack of the main program lives."""

    stack: str
    region: str
    profile: str | None = None


@dataclass(frozen=True)
class BootstrapSettings:
    repository: GitHubRepository
    accounts: dict[str, AwsAccount]
    prod_reviewer_teams: tuple[int, ...] = ()
    prod_reviewer_users: tuple[int, ...] = ()
    required_checks: tuple[str, ...] = ("ruff + make test",)
    state_backend: bool = False
    state_backend_stack: str = "prod"
    deploy_session_seconds: int = DEPLOY_SESSION_SECONDS

    @classmethod
    def from_config(cls, get: Callable[[str], Any]) -> BootstrapSettings:
        """`get(key)` returns the parsed value (pulumi.Config(NAMESPACE).get_object)."""
        repo = _mapping(get("repository"), "repository")
        owner_id, repo_id = repo.get("ownerId"), repo.get("repositoryId")
        for key, value in (("ownerId", owner_id), ("repositoryId", repo_id)):
            if not isinstance(value, int) or value <= 0:
                raise BootstrapConfigError(
                    f"{NAMESPACE}:repository.{key} must be the repository's numeric ID "
                    f"(gh api repos/OWNER/REPO --jq '.owner.id, .id'), got {value!r}"
                )
        for key in ("owner", "name"):
            if not isinstance(repo.get(key), str) or not repo[key]:
                raise BootstrapConfigError(f"{NAMESPACE}:repository.{key} is required")
        legacy = get("acceptLegacySubject")
        repository = GitHubRepository(
            owner=repo["owner"], name=repo["name"], owner_id=owner_id, repository_id=repo_id,
            accept_legacy_subject=True if legacy is None else bool(legacy),
        )
        stacks = _mapping(get("stacks"), "stacks")
        if set(stacks) != set(STACKS):
            raise BootstrapConfigError(
                f"{NAMESPACE}:stacks must configure exactly {list(STACKS)}, got {sorted(stacks)}"
            )
        accounts = {}
        for stack in STACKS:
            entry = _mapping(stacks[stack], f"stacks.{stack}")
            if not isinstance(entry.get("region"), str):
                raise BootstrapConfigError(f"{NAMESPACE}:stacks.{stack}.region is required")
            accounts[stack] = AwsAccount(stack, entry["region"], entry.get("profile"))
        reviewers = _mapping(get("prodReviewers") or {}, "prodReviewers")
        teams = tuple(int(t) for t in reviewers.get("teams", []))
        users = tuple(int(u) for u in reviewers.get("users", []))
        if not teams and not users:
            raise BootstrapConfigError(
                f"{NAMESPACE}:prodReviewers needs at least one team or user ID: prod deploys "
                "wait for one of them to approve"
            )
        backend = _mapping(get("stateBackend") or {}, "stateBackend")
        backend_stack = backend.get("stack", "prod")
        if backend_stack not in STACKS:
            raise BootstrapConfigError(f"{NAMESPACE}:stateBackend.stack must be dev or prod")
        checks = get("requiredChecks")
        return cls(
            repository=repository,
            accounts=accounts,
            prod_reviewer_teams=teams,
            prod_reviewer_users=users,
            required_checks=tuple(checks) if checks else cls.required_checks,
            state_backend=bool(backend.get("enabled", False)),
            state_backend_stack=backend_stack,
        )


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BootstrapConfigError(f"{NAMESPACE}:{key} must be a mapping, got {value!r}")
    return value
