"""``python -m local up|run|down|monitor``: the whole workflow on this machine, offline.

up       stage the data set, train a model (or reuse the cached one), start a moto server
         (S3, Lambda, Step Functions, SNS; ASL interpreter on; handlers run in-process from the
         deployment zip) and the local SageMaker endpoint, then create bucket, data, topics,
         functions and the state machine in it. State: .scones/ (or --state-dir).
run      start N executions on random staged test images (plus M bad events), show progress,
         then a table of results and a summary (accuracy, outcomes, latency, throughput).
down     stop the servers and remove .scones/ (--purge-cache also drops the trained-model cache).
monitor  the drift report over captured traffic (local.monitor).
batch    classify every object under s3://bucket/prefix/ with the batch workflow (local.batch;
         --stack NAME runs it on a deployed stack).
review   list | answer CASE_ID LABEL | serve: the human review loop (local.review_cli).
safe-mode  status | clear | enter --reason TEXT [--stack NAME]: safe mode, where a drift alarm
         sends every request to review until a person clears it (local.safe_mode_cli).
retrain  train on staged data + labelled images; keep it only if the quality gate passes
         (--stack NAME: a new SageMaker training job with the labelled channel, via pulumi up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

    from rich.console import Console

    from local.runner import EventSpec, Result

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = Path(os.environ.get("SCONES_STATE_DIR") or ".scones")


def stack_file_config(path: Path) -> dict[str, Any]:
    """The ``scones:`` keys of a Pulumi stack file (Pulumi.<stack>.yaml), without the prefix."""
    import yaml  # PyYAML, a dependency of the pulumi SDK

    try:
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"--config {path}: {exc}") from exc
    return {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("scones:")}


def task_settings(
    classes: str | None,
    routes: str | None,
    threshold: float | None,
    config_file: Path | None = None,
) -> tuple[list[str], dict[str, str], float]:
    """Classes, routes and threshold through the stack's own validation (components.settings),
    so local mode accepts exactly what scones:classes / scones:routes accept.

    ``config_file`` (a Pulumi stack file) gives scones:classes / routes / confidenceThreshold;
    the options override it. ``classes`` is "a,b,c" or a JSON list; ``routes`` is "a=x,b=y" or
    a JSON object. Raises SystemExit naming the option on bad input.
    """
    from components.settings import Settings, SettingsError

    raw: dict[str, Any] = {}
    if config_file is not None:
        stack = stack_file_config(config_file)
        keys = ("classes", "routes", "confidenceThreshold")
        raw.update({k: stack[k] for k in keys if k in stack})
    if classes:
        raw["classes"] = (
            classes if classes.lstrip().startswith("[")
            else [c.strip() for c in classes.split(",") if c.strip()]
        )
    if routes:
        if routes.lstrip().startswith("{"):
            raw["routes"] = routes
        else:
            pairs = [p.strip() for p in routes.split(",") if p.strip()]
            bad = [p for p in pairs if p.count("=") != 1]
            if bad:
                raise SystemExit(f"--routes: expected class=route pairs, got {bad}")
            raw["routes"] = dict(p.split("=") for p in pairs)
    # --threshold may be 0 or 1 (every image routed / every image to review), as the functions'
    # CONFIDENCE_THRESHOLD allows; scones:confidenceThreshold keeps a real cut inside (0, 1).
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise SystemExit(f"--threshold: must be within [0, 1], got {threshold}")
    try:
        s = Settings.from_mapping(raw.get)
    except SettingsError as exc:
        option = {"scones:classes": "--classes", "scones:routes": "--routes",
                  "scones:confidenceThreshold": "--threshold"}
        key = exc.key.split(".")[0]
        raise SystemExit(f"{option.get(key, key)}: {exc}") from exc
    chosen = s.confidence_threshold if threshold is None else threshold
    return list(s.classes), dict(s.routes), float(chosen)


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    path = _state_file(state_dir)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    path = _state_file(state_dir)
    tmp = path.with_name("state.json.tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _service_env(extra: dict[str, str]) -> dict[str, str]:
    """The user's environment minus any AWS settings (nothing may reach a real account)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONPATH=str(REPO_ROOT),
    )
    env.update(extra)
    return env


def _alive(state: dict[str, Any]) -> bool:
    from local.processes import is_alive

    pids = [p["pid"] for p in state.get("processes", {}).values()]
    return bool(pids) and all(is_alive(pid) for pid in pids)


def _stop_all(state: dict[str, Any], echo: bool = True) -> None:
    from local.processes import stop_process

    # Endpoint first: it flushes its capture buffer to S3 (moto) on SIGTERM.
    order = sorted(state.get("processes", {}).items(), key=lambda kv: kv[0] != "endpoint")
    for name, proc in order:
        if stop_process(int(proc["pid"])) and echo:
            print(f"stopped {name} (pid {proc['pid']})")


def _stage(archive_arg: str | None, data_dir: Path, classes: list[str]) -> dict[str, Any]:
    from training.cifar import file_md5, resolve_archive
    from training.stage import stage_dataset

    archive = resolve_archive(archive_arg)
    manifest_path = data_dir / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("classes") == classes and manifest["archive"]["md5"] == file_md5(archive):
            print(f"data: reusing staged {data_dir} ({archive.name})")
            return manifest
    print(f"data: staging {classes} from {archive} ...")
    return stage_dataset(archive, data_dir, classes)


WARM_UP_BURST = 8  # concurrent executions `up` runs after the smoke execution


def _smoke_execution(
    moto_url: str, deployed: dict[str, Any], data_dir: Path, classes: list[str]
) -> str:
    """One execution end to end, then a burst of concurrent ones: proves the stack works and
    warms it (handler imports, parsed definition, clients, model, the server's first
    concurrent load) so `run` measures a warm system."""
    from local.deploy import aws_client
    from local.runner import EventSpec, load_test_items, make_events, run_events, run_one

    # Load every function's code (an empty event is refused by validation, after the import),
    # then one real execution through whichever path the model's confidence picks.
    lam = aws_client("lambda", moto_url)
    for arn in deployed["function_arns"].values():
        reply = json.loads(lam.invoke(FunctionName=arn, Payload=b"{}")["Payload"].read())
        if not isinstance(reply, dict) or reply.get("errorType") != "InvalidEvent":
            raise RuntimeError(f"warm-up of {arn} answered {reply!r}, expected InvalidEvent")
    items = load_test_items(data_dir, classes)
    key, label = items[0]
    spec = EventSpec({"s3_bucket": deployed["bucket"], "s3_key": key}, key, label)
    sfn = aws_client("stepfunctions", moto_url)
    result = run_one(sfn, deployed["state_machine_arn"], spec)
    if not result.as_expected:
        raise RuntimeError(
            f"smoke execution on {key} ended in {result.outcome}: {result.message or result.status}"
        )
    # The server's first burst of concurrent executions stalls for ~0.2-0.3 s once (measured;
    # later bursts do not): take it here, not in the first `run`.
    burst = make_events(items, deployed["bucket"], WARM_UP_BURST, 0, seed=0)
    for warm in run_events(sfn, deployed["state_machine_arn"], burst, WARM_UP_BURST)[0]:
        if not warm.as_expected:
            raise RuntimeError(f"warm-up execution on {warm.image} ended in {warm.outcome}")
    return f"{key} -> {result.outcome} ({result.predicted} {result.confidence:.3f})"


def _base_train_args(epochs_arg: int | None) -> list[str]:
    epochs = epochs_arg or os.environ.get("SCONES_EPOCHS")
    return ["--seed", "0"] + (["--epochs", str(int(epochs))] if epochs else [])


def _train_args(epochs_arg: int | None) -> list[str]:
    """What `up` trains with: `retrain` uses the same, so `up` finds the retrained model."""
    from local.retrain import labelled_train_args

    return labelled_train_args(_base_train_args(epochs_arg))


def cmd_retrain(args: argparse.Namespace) -> int:
    from local.retrain import retrain

    if args.stack:
        import boto3

        from local.retrain import retrain_cloud
        from local.review_cli import ReviewError, read_outputs, region_of

        try:
            outputs = read_outputs(args.stack, args.outputs)
        except ReviewError as exc:
            print(f"retrain: {exc}", file=sys.stderr)
            return 1
        s3 = boto3.session.Session(region_name=region_of(outputs)).client("s3")
        return retrain_cloud(args.stack, outputs, s3, force=args.force)
    if args.outputs or args.force:
        raise SystemExit("retrain: --outputs and --force go with --stack NAME")
    state = _require_up(args.state_dir)
    if args.min_accuracy is None:
        from components.settings import Settings

        args.min_accuracy = Settings.from_mapping(lambda _key: None).min_accuracy
    return retrain(state, _base_train_args(args.epochs), args.min_accuracy)


def _already_up(state_dir: Path) -> bool:
    """True, after saying so, when a previous `up` in ``state_dir`` is still running.

    Otherwise stops whatever a stale or failed previous `up` left running and returns False.
    """
    existing = _read_state(state_dir)
    if existing and existing.get("status") == "up" and _alive(existing):
        print(f"already up (state in {state_dir}); `python -m local down` stops it")
        return True
    if existing:
        _stop_all(existing)
    return False


def _record_starting(state_dir: Path, classes: list[str], routes: dict[str, str]) -> dict[str, Any]:
    """Create ``state_dir`` and write state.json with status "starting" and no processes yet;
    returns that state, which `up` updates as each server starts."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "status": "starting", "processes": {}, "classes": classes, "routes": routes,
    }
    _write_state(state_dir, state)
    return state


def _stage_and_train(
    archive_arg: str | None, data_dir: Path, classes: list[str], train_args: list[str], logs: Path
) -> Path:
    """Stage the data set into ``data_dir`` and train the model (or reuse the cached one),
    printing what it did; returns the model directory."""
    from local.model_cache import ensure_model

    manifest = _stage(archive_arg, data_dir, classes)
    print(f"data: {manifest['counts']}")
    print(f"model: training.train {' '.join(train_args)} (or cached) ...")
    model_dir, reused = ensure_model(data_dir, train_args, logs / "train.log")
    metrics = json.loads((model_dir / "metrics.json").read_text())
    print(
        f"model: {'reused cached' if reused else 'trained'} {model_dir} "
        f"(test accuracy {metrics.get('test', {}).get('accuracy', float('nan')):.3f})"
    )
    return model_dir


def _start_moto(state_dir: Path, state: dict[str, Any], logs: Path) -> str:
    """Start the moto server, record its pid in ``state`` (written to state.json before the
    wait, so a failed start can stop it) and return its URL once it is ready."""
    from local.processes import start_background, wait_ready_file

    ready = state_dir / "moto.json"
    ready.unlink(missing_ok=True)
    moto = start_background(
        [
            "-m",
            "local.moto_service",
            "--ready-file",
            str(ready),
            "--code-dir",
            str(state_dir / "lambda-code"),
            "--stats-file",
            str(state_dir / "lambda-stats.json"),
        ],
        logs / "moto.log",
        _service_env({}),
    )
    state["processes"]["moto"] = {"pid": moto.pid, "log": str(logs / "moto.log")}
    _write_state(state_dir, state)
    moto_url = wait_ready_file(moto, ready, "moto server", logs / "moto.log", 60)["url"]
    print(f"moto: {moto_url} (S3, Lambda, Step Functions, SNS)")
    return moto_url


def _start_endpoint(
    state_dir: Path, state: dict[str, Any], logs: Path, model_dir: Path, moto_url: str
) -> tuple[subprocess.Popen, str]:
    """Start the local SageMaker endpoint serving ``model_dir`` on a free port, capturing to
    moto's S3; record its pid in ``state`` and state.json. Returns the process and its URL
    without waiting for it (`_wait_for_endpoint` does, after the deploy)."""
    from local.deploy import BUCKET, CAPTURE_PREFIX, ENDPOINT_NAME
    from local.processes import free_port, start_background

    port = free_port()
    endpoint_url = f"http://127.0.0.1:{port}"
    endpoint = start_background(
        [
            "-m",
            "local.endpoint_server",
            "--model",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--capture",
            f"s3://{BUCKET}/{CAPTURE_PREFIX}",
            "--endpoint-name",
            ENDPOINT_NAME,
        ],
        logs / "endpoint.log",
        _service_env({"AWS_ENDPOINT_URL_S3": moto_url}),
    )
    state["processes"]["endpoint"] = {"pid": endpoint.pid, "log": str(logs / "endpoint.log")}
    _write_state(state_dir, state)
    return endpoint, endpoint_url


def _wait_for_endpoint(
    endpoint: subprocess.Popen, endpoint_url: str, logs: Path, capture_uri: str
) -> None:
    """Wait until the endpoint answers /ping (raises if it exits or takes over 120 s)."""
    from local.deploy import ENDPOINT_NAME
    from local.processes import wait_http_ok

    wait_http_ok(endpoint, f"{endpoint_url}/ping", "endpoint server", logs / "endpoint.log", 120)
    print(f"endpoint: {endpoint_url} ({ENDPOINT_NAME}, capture {capture_uri})")


def _abandon_up(state_dir: Path, state: dict[str, Any], logs: Path, exc: BaseException) -> int:
    """After `up` failed or was interrupted: stop the servers it started, mark state.json
    failed, say why on stderr; returns the exit code (130 for Ctrl-C, else 1)."""
    _stop_all(state, echo=False)
    state["status"] = "failed"
    _write_state(state_dir, state)
    if isinstance(exc, KeyboardInterrupt):
        print("\ninterrupted: stopped the servers it had started", file=sys.stderr)
        return 130
    print(f"up failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"servers stopped; logs in {logs}; `python -m local down` cleans up", file=sys.stderr)
    return 1


def cmd_up(args: argparse.Namespace) -> int:
    """Stage, train (or reuse), start moto and the endpoint, deploy, smoke-test; state.json
    records each server as it starts. 0 when up (or already up), 1 on failure, 130 on Ctrl-C."""
    from local.deploy import deploy_workflow

    state_dir: Path = args.state_dir.resolve()
    if _already_up(state_dir):
        return 0
    classes, routes, threshold = task_settings(
        args.classes, args.routes, args.threshold, args.config
    )
    train_args = _train_args(args.epochs)

    state = _record_starting(state_dir, classes, routes)
    logs = state_dir / "logs"
    t0 = time.perf_counter()
    try:
        data_dir = state_dir / "data"
        model_dir = _stage_and_train(args.archive, data_dir, classes, train_args, logs)
        moto_url = _start_moto(state_dir, state, logs)
        endpoint, endpoint_url = _start_endpoint(state_dir, state, logs, model_dir, moto_url)
        deployed = deploy_workflow(
            moto_url=moto_url, endpoint_url=endpoint_url, data_dir=data_dir,
            build_dir=state_dir / "build", classes=classes, routes=routes, threshold=threshold,
            review_timeout_seconds=args.review_timeout,
        )
        _wait_for_endpoint(endpoint, endpoint_url, logs, deployed["capture_uri"])
        print(f"smoke execution: {_smoke_execution(moto_url, deployed, data_dir, classes)}")
        state.update(
            status="up", moto_url=moto_url, endpoint_url=endpoint_url, model_dir=str(model_dir),
            data_dir=str(data_dir), threshold=threshold, **deployed,
        )
        _write_state(state_dir, state)
    except BaseException as exc:
        return _abandon_up(state_dir, state, logs, exc)
    print(
        f"up in {time.perf_counter() - t0:.1f}s: state machine {deployed['state_machine_arn']} "
        f"({deployed['uploaded_files']} files in s3://{deployed['bucket']})"
    )
    return 0


def _require_up(state_dir: Path) -> dict[str, Any]:
    state = _read_state(state_dir.resolve())
    if not state or state.get("status") != "up":
        raise SystemExit("not up: run `python -m local up` first")
    if not _alive(state):
        raise SystemExit("local services are not running: `python -m local down` then `up`")
    return state


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _queued_messages(sqs: Any, queue_url: str) -> int:
    """How many messages the SQS queue holds now (ApproximateNumberOfMessages)."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def _run_with_progress(
    console: Console, sfn: Any, state_machine_arn: str, specs: list[EventSpec], concurrency: int
) -> tuple[list[Result], float]:
    """Run every event through the state machine, ``concurrency`` at a time, with a progress
    bar on ``console``; returns the results and the wall-clock seconds (as `run_events`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from local.runner import run_events

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("executions", total=len(specs))
        return run_events(
            sfn,
            state_machine_arn,
            specs,
            concurrency,
            on_done=lambda _r: progress.advance(task),
        )


def _print_results_table(console: Console, results: list[Result], show_all: bool) -> None:
    """One row per execution (the first 60 unless ``show_all``): unexpected ends in red, a
    wrong prediction in yellow."""
    from rich.table import Table

    table = Table(title=f"{len(results)} executions")
    for col in ("image", "true label", "predicted", "confidence", "outcome", "latency ms"):
        table.add_column(col, justify="right" if col in ("confidence", "latency ms") else "left")
    shown = results if show_all or len(results) <= 60 else results[:60]
    for r in shown:
        style = None if r.as_expected else "red"
        outcome = r.outcome
        if r.expected_error:
            outcome += " (expected)" if r.as_expected else f" (expected {r.expected_error})"
        wrong = r.true_label and r.predicted and r.predicted != r.true_label
        table.add_row(
            r.image,
            r.true_label or "-",
            f"[yellow]{r.predicted}[/]" if wrong else (r.predicted or "-"),
            _fmt(r.confidence, ".3f"),
            outcome,
            f"{r.latency_ms:.1f}",
            style=style,
        )
    console.print(table)
    if len(shown) < len(results):
        console.print(f"({len(results) - len(shown)} more rows in the saved report)")


def _print_summary(
    console: Console, summary: dict[str, Any], executions: int, wall: float, concurrency: int
) -> None:
    """Two lines from `summarize`'s dict: accuracy and outcomes; latency, throughput, bad
    events and routing events published."""
    lat = summary["latency_ms"]
    console.print(
        f"[bold]accuracy[/] {_fmt(summary['accuracy_routed'], '.1%')} of routed, "
        f"{_fmt(summary['accuracy_all_predictions'], '.1%')} of all predictions  |  "
        f"routed {_fmt(summary['routed_share'], '.1%')} of good events  |  "
        f"outcomes {summary['outcomes']}"
    )
    console.print(
        f"[bold]latency[/] p50 {_fmt(lat['p50'], '.1f')} ms, p95 {_fmt(lat['p95'], '.1f')} ms  |  "
        f"[bold]throughput[/] {_fmt(summary['throughput_per_s'], '.1f')} executions/s "
        f"({executions} in {wall:.2f}s, concurrency {concurrency})  |  "
        f"bad events in expected state {summary['bad_events_in_expected_state']}/"
        f"{summary['bad_events']}  |  "
        f"routing events published {summary['routing_events_published']}"
    )


def _save_report(runs: Path, summary: dict[str, Any], results: list[Result]) -> Path:
    """Write the summary and every result as runs/run-<local time>.json; returns its path."""
    from dataclasses import asdict

    runs.mkdir(exist_ok=True)
    report = runs / f"run-{time.strftime('%Y%m%dT%H%M%S')}.json"
    report.write_text(
        json.dumps({"summary": summary, "results": [asdict(r) for r in results]}, indent=2)
    )
    return report


def cmd_run(args: argparse.Namespace) -> int:
    """Send good and bad events through the state machine, print the results and a summary,
    save a report. 0 when every execution ended as expected, else 1."""
    from rich.console import Console

    from local.deploy import aws_client
    from local.runner import load_test_items, make_events, summarize

    state = _require_up(args.state_dir)
    # Piped output (make, CI logs) would wrap the table at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 132)
    sfn = aws_client("stepfunctions", state["moto_url"])
    sqs = aws_client("sqs", state["moto_url"])
    routing_queue = state["observer_queues"]["scones-routing"]

    items = load_test_items(Path(state["data_dir"]), state["classes"])
    specs = make_events(items, state["bucket"], args.events, args.bad_events, args.seed)
    before = _queued_messages(sqs, routing_queue)
    results, wall = _run_with_progress(
        console, sfn, state["state_machine_arn"], specs, args.concurrency
    )
    summary = summarize(results, wall)
    summary["routing_events_published"] = _queued_messages(sqs, routing_queue) - before

    _print_results_table(console, results, args.show_all)
    _print_summary(console, summary, len(results), wall, args.concurrency)
    report = _save_report(args.state_dir.resolve() / "runs", summary, results)
    console.print(f"report: {report}")
    if summary["unexpected"]:
        console.print(f"[red]{len(summary['unexpected'])} execution(s) ended unexpectedly[/]")
        return 1
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from local.batch import cmd_batch as run_batch_command

    return run_batch_command(args, None if args.stack else _require_up(args.state_dir))


def cmd_down(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir.resolve()
    state = _read_state(state_dir)
    if state:
        _stop_all(state)
    if state_dir.exists():
        shutil.rmtree(state_dir)
        print(f"removed {state_dir}")
    else:
        print("nothing to remove")
    if args.purge_cache:
        from local.model_cache import models_cache_dir

        shutil.rmtree(models_cache_dir(), ignore_errors=True)
        print(f"removed trained-model cache {models_cache_dir()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="local state directory (default .scones, or $SCONES_STATE_DIR)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="stage data, train/reuse model, start services, deploy")
    up.add_argument(
        "--archive",
        help="cifar-100-python.tar.gz (else $SCONES_CIFAR_ARCHIVE, "
        "else a verified download into the cache)",
    )
    up.add_argument(
        "--epochs",
        type=int,
        help="training epochs (else $SCONES_EPOCHS, else training.train's default)",
    )
    up.add_argument(
        "--classes",
        help="CIFAR-100 fine label names, comma-separated or a JSON list (default: "
        "default_task.DEFAULT_CLASSES)",
    )
    up.add_argument(
        "--config",
        type=Path,
        help="a Pulumi stack file (e.g. Pulumi.roadway.yaml): its scones:classes, scones:routes "
        "and scones:confidenceThreshold (the options below override them)",
    )
    up.add_argument(
        "--routes",
        help="class=route pairs, comma-separated, or a JSON object; every class needs one "
        "(default: default_task.DEFAULT_ROUTES, for the classes it covers)",
    )
    up.add_argument("--threshold", type=float, help="confidence threshold (default from settings)")
    up.add_argument(
        "--review-timeout",
        type=int,
        help="seconds a case waits for a person before ReviewExpired (default 24 h)",
    )
    run = sub.add_parser("run", help="send test events through the state machine")
    run.add_argument("--events", type=int, default=40, help="good events (random test images)")
    run.add_argument("--bad-events", type=int, default=0, help="bad events mixed in")
    run.add_argument("--concurrency", type=int, default=8, help="executions in flight")
    run.add_argument("--seed", type=int, default=None, help="seed for choosing images")
    run.add_argument("--show-all", action="store_true", help="print every row")
    retrain = sub.add_parser("retrain", help="train with the labelled images, gate, keep")
    retrain.add_argument("--epochs", type=int, help="as for up (use the same value)")
    retrain.add_argument(
        "--min-accuracy", type=float, help="quality gate (default scones:minAccuracy's default)"
    )
    retrain.add_argument(
        "--stack", help="retrain the deployed stack: labelled snapshot, then pulumi up (gated)"
    )
    retrain.add_argument("--outputs", type=Path, help="with --stack: its outputs as JSON")
    retrain.add_argument(
        "--force", action="store_true", help="with --stack: even below retrainAfterLabels"
    )
    down = sub.add_parser("down", help="stop everything and remove local state")
    down.add_argument("--purge-cache", action="store_true", help="also drop cached models")
    sub.add_parser(
        "monitor", help="drift report over captured traffic (local.monitor)", add_help=False
    )
    from local.batch import add_parser as add_batch_parser

    add_batch_parser(sub)
    sub.add_parser(
        "review", help="list/answer/serve review cases (local.review_cli)", add_help=False
    )
    sub.add_parser(
        "safe-mode", help="status/clear/enter safe mode (local.safe_mode_cli)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `monitor` hands all its arguments to local.monitor, imported only when asked for.
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--state-dir" else 1
    if i < len(argv) and argv[i] == "monitor":
        if "--state-dir" in argv[:i]:  # local.monitor reads the state dir from the environment
            os.environ["SCONES_STATE_DIR"] = argv[argv.index("--state-dir") + 1]
        from local.monitor import main as monitor_main

        return int(monitor_main(argv[i + 1 :]) or 0)
    if i < len(argv) and argv[i] == "review":
        from local.review_cli import main as review_main

        state_dir = DEFAULT_STATE_DIR
        if "--state-dir" in argv[:i]:
            state_dir = Path(argv[argv.index("--state-dir") + 1])
        # Local mode's state is read only for the local target (not with --stack/--outputs).
        return review_main(argv[i + 1 :] or ["--help"], lambda: _require_up(state_dir))
    if i < len(argv) and argv[i] == "safe-mode":
        from local.safe_mode_cli import build_parser as safe_mode_parser
        from local.safe_mode_cli import main as safe_mode_main

        rest = argv[i + 1 :]
        parsed, _ = safe_mode_parser().parse_known_args(rest)  # --help exits here
        if parsed.stack:
            return safe_mode_main(rest, None)
        state_dir = DEFAULT_STATE_DIR
        if "--state-dir" in argv[:i]:
            state_dir = Path(argv[argv.index("--state-dir") + 1])
        return safe_mode_main(rest, _require_up(state_dir))
    args = build_parser().parse_args(argv)
    handlers = {
        "up": cmd_up, "run": cmd_run, "down": cmd_down, "batch": cmd_batch,
        "retrain": cmd_retrain,
    }
    return handlers[args.command](args)
