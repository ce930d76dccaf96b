"""Lifecycle invariants of training: data before the job, a failed job's retry path, timeouts.

Sources (hashicorp/terraform-provider-aws internal/service/sagemaker/training_job.go):
- the create calls CreateTrainingJob, then waitTrainingJobCreated (Pending InProgress, Target
  Completed or Stopped) for up to the create timeout, ``SetDefaultCreateTimeout(45 *
  time.Minute)``; on a wait error it returns without ``resp.State.Set``: a Failed job (or one
  still running at the timeout) leaves no state, and its name stays taken in SageMaker.
- "training_job_name" has RequiresReplace, validated by ``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$``.
Pulumi orders a create after every resource in its ``depends_on`` (Pulumi docs, "dependsOn":
https://www.pulumi.com/docs/iac/concepts/options/dependson/).
"""

from __future__ import annotations

import re

import pytest

import components.model_training as training

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
GATE_REASON = (
    "AlgorithmError: ExecuteUserScriptError: quality gate: test accuracy 0.7812 is below "
    "min-accuracy 0.85"
)


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def test_training_waits_for_the_staged_data(run) -> None:
    """The job is created only after every object of its channels exists."""
    job = run.one("aws:sagemaker/trainingJob:TrainingJob")
    data_objects = [
        r for r in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
        if r.name.startswith("data-")
    ]
    assert len(data_objects) == 3
    missing = [o.name for o in data_objects if o.urn not in job.options.dependencies]
    assert missing == []


def test_create_timeout_covers_the_job_runtime(run) -> None:
    """The provider's 45-minute default would give up on a 3-hour job and keep no state."""
    job = run.one("aws:sagemaker/trainingJob:TrainingJob")
    runtime = job.inputs["stoppingCondition"]["maxRuntimeInSeconds"]
    create = job.options.custom_timeouts.get("create", "")
    assert create.endswith("m"), job.options.custom_timeouts
    assert int(create[:-1]) * 60 > runtime > 45 * 60


def test_a_failed_job_stops_the_preview_with_its_reason_and_the_retry(run_stack) -> None:
    """The next preview after a failed `up` prints SageMaker's FailureReason and the retry."""
    asked: list[str] = []

    def describe(name: str) -> dict:
        asked.append(name)
        return {"TrainingJobName": name, "TrainingJobStatus": "Failed",
                "FailureReason": GATE_REASON}

    with pytest.raises(training.TrainingJobNameTaken) as raised:
        run_stack("dev", describe_training_job=describe)
    message = str(raised.value)
    assert asked and asked[0] in message
    assert "min-accuracy 0.85" in message  # the quality gate's own words reach the user
    assert "pulumi config set scones:trainingAttempt 2" in message


def test_the_retry_gets_a_new_valid_name(run_stack, dev) -> None:
    retried = run_stack("dev", {"scones:trainingAttempt": "2"},
                        describe_training_job=lambda name: None)
    first, second = dev.outputs["trainingJobName"], retried.outputs["trainingJobName"]
    assert second != first and second.endswith("-r2")
    assert JOB_NAME.match(second) and len(second) <= 63
    # The job resource carries the new name (a replacement, never a clash with the failed one).
    job = retried.one("aws:sagemaker/trainingJob:TrainingJob")
    assert job.inputs["trainingJobName"] == second


@pytest.mark.parametrize("status", ["InProgress", "Completed"])
def test_a_live_or_finished_job_is_not_refused(status: str) -> None:
    training.check_job_name_free("j", {"TrainingJobStatus": status}, attempt=1)
    training.check_job_name_free("j", None, attempt=1)


def test_a_stopped_job_is_refused_too() -> None:
    """Stopped is the provider's target state too, but it never yields a model."""
    with pytest.raises(training.TrainingJobNameTaken, match=r"Stopped.*trainingAttempt 4"):
        training.check_job_name_free("j", {"TrainingJobStatus": "Stopped"}, attempt=3)


def test_job_names_stay_valid_for_long_stacks_and_attempts() -> None:
    base = {"data_hash": "d", "code_hash": "c", "image_uri": "i", "hyperparameters": {"e": "1"}}
    for attempt in (1, 2, 99):
        name = training.training_job_name("s" * 60, attempt=attempt, **base)
        assert JOB_NAME.match(name) and len(name) <= 63, name
    first = training.training_job_name("dev", **base)
    assert first != training.training_job_name("dev", attempt=2, **base)
    with pytest.raises(ValueError):
        training.training_job_name("dev", attempt=0, **base)


def test_create_timeout_minutes() -> None:
    assert training.training_create_timeout_minutes(3 * 3600) == 240
    assert training.training_create_timeout_minutes(61) == 62
