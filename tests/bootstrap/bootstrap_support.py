"""Runs Pulumi programs under mocks for tests/bootstrap, and the IAM evaluator under Node.

- `AutonamingMocks` answers like tests/infra's RecordingMocks, but gives every autonamed
  resource the physical name the main program's ``pulumi:autonaming`` pattern (Pulumi.yaml)
  produces, so the policy check sees the names AWS will see. The engine applies that pattern
  (Pulumi docs, "Resource names", autonaming configuration); mocks have no engine, so it is
  rendered here, with a fixed hex suffix.
- `BootstrapMocks` answers the bootstrap program's calls per AWS account.
- `evaluate(requests)` runs .github/tools/iam-evaluate.cjs (@cloud-copilot/iam-simulate).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor
from pulumi_support import ACCOUNT, REGION, RecordingMocks

from bootstrap.naming import main_project

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".github" / "tools"
HEX = "a1b2c3d4e5f6a7b8"


def render_autoname(pattern: str, *, project: str, stack: str, name: str) -> str:
    text = pattern.replace("${project}", project).replace("${stack}", stack)
    text = text.replace("${name}", name)
    text = re.sub(r"\$\{hex\((\d+)\)\}", lambda m: HEX[: int(m.group(1))], text)
    if "${" in text:
        raise ValueError(f"autonaming expression not simulated in {pattern!r}")
    return text


class AutonamingMocks(RecordingMocks):
    """RecordingMocks with the main program's autonaming pattern applied to missing names."""

    def __init__(self, stack: str, name_inputs: dict[str, str | None]) -> None:
        super().__init__()
        self.stack = stack
        self.name_inputs = name_inputs
        self.project, self.pattern = main_project()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        key = self.name_inputs.get(args.typ)
        if key and not args.inputs.get(key):
            physical = render_autoname(
                self.pattern, project=self.project, stack=self.stack, name=args.name
            )
            args = pulumi.runtime.MockResourceArgs(
                typ=args.typ, name=args.name, inputs={**args.inputs, key: physical},
                provider=args.provider, resource_id=args.resource_id, custom=args.custom,
            )
        resource_id, outputs = super().new_resource(args)
        if args.typ == "aws:s3/bucket:Bucket":
            # RecordingMocks names buckets after the logical name; AWS uses the input.
            outputs["bucket"] = args.inputs["bucket"]
            outputs["arn"] = f"arn:aws:s3:::{args.inputs['bucket']}"
            self.records[-1].outputs = outputs
            resource_id = args.inputs["bucket"]
        elif args.typ == "aws:lambda/layerVersion:LayerVersion":
            # A layer version's ARN is the layer's ARN plus the version (1 for a new layer).
            layer = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{args.inputs['layerName']}"
            outputs.update(layerArn=layer, arn=f"{layer}:1", version="1")
            self.records[-1].outputs = outputs
        return resource_id, outputs


ACCOUNTS = {"dev": "111111111111", "prod": "222222222222"}


class DependencyMonitor(MockMonitor):
    """MockMonitor that also records which resources each registration depends on (URNs)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.dependencies: dict[str, set[str]] = {}

    def RegisterResource(self, request):  # the gRPC method MockMonitor implements
        self.dependencies[request.name] = set(request.dependencies) | {
            urn for deps in request.propertyDependencies.values() for urn in deps.urns
        }
        return super().RegisterResource(request)


class BootstrapMocks(pulumi.runtime.Mocks):
    """Each stack's AWS provider answers with its own account (aws-dev, aws-prod)."""

    def __init__(self) -> None:
        self.resources: list[dict[str, Any]] = []
        self.monitor: DependencyMonitor | None = None

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        account = self._account(args.provider or "")
        name = args.inputs.get("name") or f"{args.name}-a1b2c3"
        if args.typ == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::{account}:role/{name}"
        elif args.typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            host = args.inputs["url"].removeprefix("https://")
            outputs["arn"] = f"arn:aws:iam::{account}:oidc-provider/{host}"
        elif args.typ == "aws:s3/bucket:Bucket":
            outputs["bucket"] = name
            outputs["arn"] = f"arn:aws:s3:::{name}"
        elif args.typ == "aws:kms/key:Key":
            outputs["keyId"] = "0000aaaa-bb11-cc22-dd33-eeeeeeeeeeee"
            outputs["arn"] = f"arn:aws:kms:eu-west-1:{account}:key/{outputs['keyId']}"
        self.resources.append(
            {"type": args.typ, "name": args.name, "inputs": dict(args.inputs),
             "outputs": outputs, "provider": args.provider or ""}
        )
        return outputs.get("bucket") or f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            account = self._account(args.provider or "")
            return {"accountId": account, "arn": f"arn:aws:iam::{account}:user/admin",
                    "userId": "AIDA", "id": account}
        raise AssertionError(f"unexpected invoke {args.token}")

    @staticmethod
    def _account(provider: str) -> str:
        for stack, account in ACCOUNTS.items():
            if f"::aws-{stack}::" in provider:
                return account
        return "999999999999"


def evaluator_command() -> list[str] | None:
    """node + .github/tools/iam-evaluate.cjs, after `npm ci` when the tools are missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    if not (TOOLS / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        proc = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=TOOLS, capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, f"npm ci in {TOOLS} failed:\n{proc.stdout}\n{proc.stderr}"
    return [node, str(TOOLS / "iam-evaluate.cjs")]


def evaluate(command: list[str], requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        command, input=json.dumps(requests), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == len(requests)
    return results


BOOTSTRAP_CONFIG: dict[str, Any] = {
    "repository": {"owner": "octo-org", "name": "scones", "ownerId": 123456,
                   "repositoryId": 789012},
    "stacks": {"dev": {"region": "eu-west-1", "profile": "dev-admin"},
               "prod": {"region": "eu-west-1", "profile": "prod-admin"}},
    "prodReviewers": {"teams": [42], "users": []},
    "requiredChecks": ["ruff + make test", "train + evaluation report"],
}


def run_bootstrap(config: dict[str, Any]) -> tuple[BootstrapMocks, dict[str, Any]]:
    from pulumi.runtime.config import set_all_config

    from bootstrap.program import build
    from bootstrap.settings import NAMESPACE, BootstrapSettings

    mocks = BootstrapMocks()
    mocks.monitor = DependencyMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project="scones-bootstrap", stack="ci", preview=False, monitor=mocks.monitor
    )
    set_all_config({f"{NAMESPACE}:{k}": json.dumps(v) for k, v in config.items()})
    holder: dict[str, Any] = {}

    @pulumi.runtime.test
    def program():
        settings = BootstrapSettings.from_config(pulumi.Config(NAMESPACE).get_object)
        outputs = build(settings)
        return pulumi.Output.all(**outputs).apply(lambda v: holder.update(v))

    program()
    return mocks, holder
