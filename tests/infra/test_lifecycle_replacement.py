"""Lifecycle invariant: a resource with a fixed name is never replaced create-before-delete.

Pulumi replaces a resource by creating the new one before deleting the old one unless
`deleteBeforeReplace` is set (Pulumi docs, resource option "deleteBeforeReplace":
https://www.pulumi.com/docs/iac/concepts/options/deletebeforereplace/); with a fixed physical
name the create collides with the old resource. So every fixed-name resource whose
replacement-forcing inputs are set by this program either is delete-before-replace, or changes
its name whenever those inputs change.

REPLACEMENT_FORCING lists, per type, the inputs besides the name that force a replacement in the
Terraform AWS provider that pulumi-aws bridges (hashicorp/terraform-provider-aws), as read for
this audit:
- internal/service/sfn/state_machine.go: "type" is ForceNew (UpdateStateMachine takes only the
  definition, role, logging and tracing; the update function sends no type).
- internal/service/sagemaker/endpoint.go: "name" and
  deployment_config.auto_rollback_configuration are ForceNew.
- internal/service/sagemaker/training_job.go: every argument has RequiresReplace.
- internal/service/appautoscaling/policy.go: the policy's resource_id (a fixed endpoint/variant
  path here) is part of its identity; delete-before-replace regardless.
- Lambda functions, log groups, the KMS alias, the dashboard, the model package group and the
  log resource policy: listed with no other forcing input, because this program sets none of the
  provider's ForceNew inputs on them besides the name (re-check when adding inputs).
- internal/service/ssm/parameter.go: besides the name only "tier" forces a replacement, and
  only from Advanced to Standard (CustomizeDiff ForceNewIfChange("tier", ...)); "type" and
  "value" update in place. This program always sets Standard.
- internal/service/lambda/layer_version.go: every argument is ForceNew, and each replacement is
  a new version of the same layer name (PublishLayerVersion), so a fixed layer name never
  collides.
"""

from __future__ import annotations

import pytest

# type -> (the physical-name input, replacement-forcing inputs besides it that we may set)
REPLACEMENT_FORCING: dict[str, tuple[str, tuple[str, ...]]] = {
    "aws:sfn/stateMachine:StateMachine": ("name", ("type",)),
    "aws:sagemaker/endpoint:Endpoint": ("name", ("deploymentConfig.autoRollbackConfiguration",)),
    "aws:lambda/function:Function": ("name", ()),
    "aws:cloudwatch/logGroup:LogGroup": ("name", ()),
    "aws:kms/alias:Alias": ("name", ()),
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName", ()),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": ("modelPackageGroupName", ()),
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": ("policyName", ()),
    "aws:appautoscaling/policy:Policy": ("name", ("resourceId",)),
    "aws:ssm/parameter:Parameter": ("name", ()),
}
# Fixed names that are safe by construction (the docstring says why).
NAME_DERIVED_FROM_FORCING_INPUTS = {"aws:sagemaker/trainingJob:TrainingJob"}
VERSIONED = {"aws:lambda/layerVersion:LayerVersion"}
# Inputs that name a resource physically; an explicitly set one is a fixed name.
NAME_INPUTS = {"name", "dashboardName", "modelPackageGroupName", "policyName",
               "trainingJobName", "layerName"}


def _get(inputs: dict, dotted: str):
    value = inputs
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def test_every_fixed_name_type_is_audited(run) -> None:
    """A new fixed-name resource type must be added to the audit above, with its source."""
    fixed = {r.type for r in run.resources if NAME_INPUTS & set(r.inputs) and
             not r.type.startswith(("pulumi", "scones:"))}
    audited = set(REPLACEMENT_FORCING) | NAME_DERIVED_FROM_FORCING_INPUTS | VERSIONED
    assert fixed - audited == set()


def test_fixed_names_with_forcing_inputs_delete_before_replace(run) -> None:
    offenders = []
    for r in run.resources:
        if r.type not in REPLACEMENT_FORCING:
            continue
        name_input, forcing = REPLACEMENT_FORCING[r.type]
        if not r.inputs.get(name_input):
            continue  # auto-named: a replacement gets a new name
        forced = any(_get(r.inputs, f) not in (None, [], {}) for f in forcing)
        if forced and not r.options.delete_before_replace:
            offenders.append(r.name)
    assert offenders == []


def test_state_machine_and_endpoint_are_delete_before_replace(run) -> None:
    """The two cases the review found: scones:workflowType and a replaced rollback alarm."""
    for state_machine in run.of_type("aws:sfn/stateMachine:StateMachine"):
        assert state_machine.options.delete_before_replace, state_machine.name
    assert run.one("aws:sagemaker/endpoint:Endpoint").options.delete_before_replace


def test_training_job_name_follows_every_forcing_input(run_stack, prod) -> None:
    """Changing any configured TrainingJob input (all RequiresReplace) changes its name."""
    base = prod.outputs["trainingJobName"]
    email = {"scones:alarmEmail": "routing-ops@example.com"}
    for key, value in [
        ("scones:trainingInstanceType", "ml.c5.xlarge"),
        ("scones:epochs", "200"),
        ("scones:minAccuracy", "0.9"),
        ("scones:trainingAttempt", "2"),
    ]:
        changed = run_stack("prod", {**email, key: value}).outputs["trainingJobName"]
        assert changed != base, key
    # A replaced role (its ARN is not part of the name) does not replace a finished job.
    assert "roleArn" in prod.one("aws:sagemaker/trainingJob:TrainingJob").options.ignore_changes
