"""Mocks and helpers for the Pulumi tests (tests/infra/conftest.py sets the mocks once).

`run_stack(stack, overrides)` runs the real program (components.stack.deploy) against the
stack's Pulumi.<stack>.yaml config and returns every registered resource (type, name, inputs as
the engine sees them, camelCase; outputs; URN, which encodes the parent chain) and the resolved
stack outputs. With preview=False every `apply` runs, so policies and the state machine
definition are checked as they would be deployed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "eu-west-1"
LAYER_ARN = (
    f"arn:aws:lambda:{REGION}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:1"
)


@dataclass
class Options:
    """The resource options the engine received (what the lifecycle depends on)."""

    delete_before_replace: bool = False
    retain_on_delete: bool = False
    protect: bool = False
    import_id: str = ""
    dependencies: tuple[str, ...] = ()  # URNs: explicit depends_on and every input's resource
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    replace_on_changes: tuple[str, ...] = ()
    ignore_changes: tuple[str, ...] = ()
    hooks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> hook names
    aliases: tuple[str, ...] = ()  # the URNs the resource's aliases name (its former URNs)


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    urn: str = ""
    options: Options = field(default_factory=Options)

    @property
    def parent_types(self) -> list[str]:
        """Types of the ancestors, outermost first (from the URN's type chain)."""
        chain = self.urn.split("::")[2].split("$")
        return chain[:-1]


def _physical_name(args: pulumi.runtime.MockResourceArgs) -> str:
    return args.inputs.get("name") or f"{args.name}-a1b2c3"


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers like AWS would for the computed outputs the program reads (arn, name, ...)."""

    def __init__(self) -> None:
        self.records: list[Registered] = []
        self.calls: list[tuple[str, dict]] = []
        self.missing_parameters: set[str] = set()  # SSM names answered with ParameterNotFound

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        typ, name = args.typ, _physical_name(args)
        arn = None
        if typ == "aws:s3/bucket:Bucket":
            # An imported bucket keeps its name; a new one gets bucket_prefix + a suffix.
            outputs["bucket"] = args.inputs.get("bucket") or f"{args.name}-a1b2c3"
            arn = f"arn:aws:s3:::{outputs['bucket']}"
            rid = outputs["bucket"]
        elif typ == "aws:kms/key:Key":
            outputs["keyId"] = args.resource_id or "1234abcd-12ab-34cd-56ef-1234567890ab"
            arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{outputs['keyId']}"
        elif typ == "aws:iam/role:Role":
            outputs["name"] = name
            arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
            rid = name
        elif typ == "aws:lambda/function:Function":
            outputs["name"] = name
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        elif typ == "aws:sns/topic:Topic":
            outputs["name"] = name
            arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
        elif typ == "aws:sqs/queue:Queue":
            outputs["name"] = name
            outputs["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        elif typ == "aws:sfn/stateMachine:StateMachine":
            arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        elif typ == "aws:ssm/parameter:Parameter":
            # A name that starts with "/" adds no "/" of its own to the ARN.
            arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"
            rid = name
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"
        elif typ.startswith("aws:sagemaker/"):
            outputs.setdefault("name", name)
            kind = typ.split(":")[-1].lower()
            arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"
        elif typ == "pulumi-python:dynamic:Resource":
            outputs["model_package_arn"] = (
                f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{args.name}/1"
            )
        else:
            outputs.setdefault("name", name)
            arn = f"arn:aws:mock:{REGION}:{ACCOUNT}:{typ.split(':')[-1]}/{name}"
        if arn:
            outputs["arn"] = arn
        resource_id = locals().get("rid") or f"{args.name}-id"
        self.records.append(Registered(typ, args.name, dict(args.inputs), outputs))
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT,
            }
        if args.token == "aws:ssm/getParameter:getParameter":
            if args.args["name"] in self.missing_parameters:
                # As the provider reports it: the invoke fails (CheckFailure), no value.
                return {}, [("name", f"ParameterNotFound: {args.args['name']}")]
            return {
                "name": args.args["name"],
                "value": LAYER_ARN,
                "type": "String",
                "id": args.args["name"],
                "arn": f"arn:aws:ssm:{REGION}::parameter{args.args['name']}",
                "version": 1,
                "insecureValue": LAYER_ARN,
                "withDecryption": False,
            }
        raise AssertionError(f"unexpected invoke {args.token}")


@dataclass
class StackRun:
    stack: str
    resources: list[Registered]
    outputs: dict[str, Any]
    components: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {len(found)}"
        return found[0]

    def within(self, component: str) -> list[Registered]:
        """Resources whose ancestors include the component type `component`."""
        return [r for r in self.resources if component in r.parent_types]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]


def stack_config(stack: str) -> dict[str, str]:
    """Pulumi.<stack>.yaml as the engine hands it to the program (structured values as JSON)."""
    raw = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()
    }


class RecordingMonitor(MockMonitor):
    """MockMonitor that also keeps each registration's resource options, by URN."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.options: dict[str, Options] = {}

    def RegisterResource(self, request):  # the gRPC method's name
        response = super().RegisterResource(request)
        timeouts = request.customTimeouts
        self.options[response.urn] = Options(
            delete_before_replace=bool(request.deleteBeforeReplace),
            retain_on_delete=bool(request.retainOnDelete),
            protect=bool(request.protect),
            import_id=request.importId,
            dependencies=tuple(request.dependencies),
            custom_timeouts={
                k: v
                for k in ("create", "update", "delete")
                if (v := getattr(timeouts, k, ""))
            },
            replace_on_changes=tuple(request.replaceOnChanges),
            ignore_changes=tuple(request.ignoreChanges),
            hooks={
                kind: tuple(getattr(request.hooks, kind))
                for kind in ("before_create", "after_create", "before_update", "after_update",
                             "before_delete", "after_delete")
                if getattr(request.hooks, kind)
            },
            aliases=tuple(self._alias_urn(request, alias) for alias in request.aliases),
        )
        return response

    def _alias_urn(self, request, alias) -> str:
        """An alias as a URN: given as one, or a spec whose unset fields are the resource's own
        (the mock monitor takes alias specs: RESOURCE_MONITOR_FEATURE_ALIAS_SPECS)."""
        if alias.WhichOneof("alias") == "urn":
            return alias.urn
        spec = alias.spec
        parent = "" if spec.noParent else (spec.parentUrn or request.parent)
        return self.make_urn(parent, spec.type or request.type, spec.name or request.name)


MOCKS = RecordingMocks()
MONITOR = RecordingMonitor(MOCKS)


