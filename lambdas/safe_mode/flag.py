"""The safe-mode flag: one SSM Parameter Store parameter per stack that the filter step reads.

While the flag is on, the filter step sends every request to a person with the reason
``safe_mode`` (lambdas/review_reasons.py) instead of routing on the model's answer. A drift
alarm turns it on (components/safe_mode.py in the cloud, ``python -m local monitor`` locally);
only a person turns it off (``python -m local safe-mode clear [--stack NAME]``).

The value is a JSON object, ``SafeModeState`` (docs/design.md, "Safe mode"):
``{"on": bool, "changed_at": ISO-8601 UTC, "changed_by": str, "reason": str}``.

The parameter is a SecureString under the stack's KMS key (standard tier: Parameter Store calls
KMS Encrypt/Decrypt directly with the encryption context ``PARAMETER_ARN``, AWS KMS developer
guide, "How AWS Systems Manager Parameter Store uses AWS KMS",
https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html). Writers
always name the key: PutParameter without ``KeyId`` would encrypt with the account's
``aws/ssm`` key, which every principal of the account may decrypt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

# Environment of the functions that use the flag (set by components/ and local/deploy.py).
PARAMETER_ENV = "SAFE_MODE_PARAMETER"  # the parameter's name (filter step, safe-mode function)
KEY_ENV = "SAFE_MODE_KEY_ID"  # the KMS key the safe-mode function encrypts with (cloud only)
# The filter step caches the value this long (Powertools' own default, 5 s: "By default, we
# cache parameters retrieved in-memory for 5 seconds", Powertools for AWS Lambda (Python),
# Parameters utility, https://docs.powertools.aws.dev/lambda/python/latest/utilities/parameters/),
# so a change is seen within seconds and a busy function reads SSM at most once per 5 s.
CACHE_SECONDS = 5


def parameter_name(stack: str) -> str:
    """``/scones-<stack>/safe-mode``: under the stack's name prefix, which the deploy role's
    policy (bootstrap/policies.py) scopes every resource to."""
    return f"/scones-{stack}/safe-mode"


class SafeModeFlagError(ValueError):
    """The parameter's value is not a SafeModeState (the message says what is wrong)."""


@dataclass(frozen=True)
class SafeModeState:
    on: bool
    changed_at: str  # ISO-8601 UTC, "" for the value the stack was deployed with
    changed_by: str  # "alarm:<name>", "local monitor", or the person's identity
    reason: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> SafeModeState:
        try:
            data = json.loads(raw)
        except (TypeError, json.JSONDecodeError) as exc:
            raise SafeModeFlagError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or set(data) != {"on", "changed_at", "changed_by", "reason"}:
            raise SafeModeFlagError(
                f"expected keys on, changed_at, changed_by, reason; got {data!r}"
            )
        if not isinstance(data["on"], bool) or not all(
            isinstance(data[k], str) for k in ("changed_at", "changed_by", "reason")
        ):
            raise SafeModeFlagError(f"on must be a boolean and the rest strings: {data!r}")
        return cls(**data)


# The value the stack deploys the parameter with (Pulumi ignores later changes to it).
INITIAL = SafeModeState(on=False, changed_at="", changed_by="deploy", reason="initial state")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_state(ssm: Any, name: str) -> SafeModeState:
    """The current state, read from SSM now (no cache)."""
    value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    return SafeModeState.from_json(value)


def write_state(ssm: Any, name: str, state: SafeModeState, key_id: str | None) -> None:
    extra = {"KeyId": key_id} if key_id else {}
    ssm.put_parameter(
        Name=name, Value=state.to_json(), Type="SecureString", Overwrite=True, **extra
    )


def enter(
    ssm: Any, name: str, *, by: str, reason: str, key_id: str | None, now: str | None = None
) -> tuple[SafeModeState, bool]:
    """Turn safe mode on; (state, changed). Already on: left as it is (the first cause stays)."""
    try:
        current = read_state(ssm, name)
    except SafeModeFlagError:
        current = None  # a malformed value is overwritten with a well-formed "on"
    if current is not None and current.on:
        return current, False
    state = SafeModeState(on=True, changed_at=now or _now(), changed_by=by, reason=reason)
    write_state(ssm, name, state, key_id)
    return state, True


def clear(
    ssm: Any, name: str, *, by: str, key_id: str | None, now: str | None = None
) -> tuple[SafeModeState, bool]:
    """Turn safe mode off; (state, changed). Already off: left as it is."""
    try:
        current = read_state(ssm, name)
    except SafeModeFlagError:
        current = None
    if current is not None and not current.on:
        return current, False
    state = SafeModeState(
        on=False, changed_at=now or _now(), changed_by=by, reason="cleared by a person"
    )
    write_state(ssm, name, state, key_id)
    return state, True


_provider: Any = None


def _ssm_provider() -> Any:
    """Powertools' SSM provider over the function's shared ssm client (lambdas/aws.py), made
    again when that client is replaced (tests reset the clients between mocks)."""
    global _provider
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from lambdas.aws import client

    ssm = client("ssm")
    if _provider is None or _provider.client is not ssm:
        _provider = SSMProvider(boto3_client=ssm)
    return _provider


def current(env: Mapping[str, str] = os.environ) -> SafeModeState | None:
    """What the filter step obeys: None when the function has no flag (``SAFE_MODE_PARAMETER``
    unset), else the state, read at most every CACHE_SECONDS.

    Fails closed: a flag that cannot be read or parsed counts as on (its ``reason`` says why),
    so an unreadable flag sends requests to a person rather than routing them unchecked."""
    name = (env.get(PARAMETER_ENV) or "").strip()
    if not name:
        return None
    try:
        raw = _ssm_provider().get(name, max_age=CACHE_SECONDS, decrypt=True)
        return SafeModeState.from_json(raw)
    except Exception as exc:  # Powertools' GetParameterError, SafeModeFlagError
        return SafeModeState(
            on=True,
            changed_at=_now(),
            changed_by="filter_inferences",
            reason=f"the safe-mode flag {name} could not be read ({type(exc).__name__}: {exc})",
        )


def clear_cache() -> None:
    """Forget the cached value (tests; the next read goes to SSM)."""
    if _provider is not None:
        _provider.clear_cache()
