"""``python -m local monitor``: the cloud drift detector, run over local mode's captured traffic.

    python -m local monitor [--capture s3://scones-local/capture | DIR] [--baseline FILE|s3://..]
        [--endpoint-name scones-local] [--variant AllTraffic] [--window-minutes 60 | --all]
        [--config Pulumi.dev.yaml] [--report-dir .scones/monitor] [--fail-on-drift]

It reads the capture (local mode's moto S3 through ``AWS_ENDPOINT_URL_S3``, or a capture
directory), builds the same report as the Lambda (``lambdas.detect_drift.detector``), prints
the metrics and which CloudWatch alarms would fire (the same rules and thresholds: the
``scones`` config keys through ``components.settings``), and writes a report folder:
``report.json``, ``confidence.png`` (confidence and low-confidence rate over time),
``class_share.png`` (share of each class over time), ``psi.png`` (PSI per input statistic and
of the confidence, whole window and over time) and ``index.html`` showing them.

Without flags it uses local mode's state (``.scones/state.json``, written by ``local up``):
its capture URI, moto URL, endpoint name and model baseline.

Control, not only monitoring: when an alarm would fire over local mode's own capture, it
switches the workflow into safe mode through the safe-mode function (as the drift alarm's
EventBridge rule does in the cloud, components/safe_mode.py): every request then goes to
review with the reason ``safe_mode`` until ``python -m local safe-mode clear``.
``--no-safe-mode`` only reports.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from lambdas.detect_drift.capture import ParseResult, read_directory, read_s3_window
from lambdas.detect_drift.detector import build_report
from lambdas.detect_drift.publish import metric_points
from lambdas.detect_drift.rules import DriftThresholds
from lambdas.s3_uri import S3UriError, parse_s3_uri
from training.baseline import BaselineError, psi_against, round_confidence, validate_baseline
from training.image_stats import batch_statistics

# Tests may pin the state file; otherwise it is $SCONES_STATE_DIR/state.json, read at call time
# (``python -m local --state-dir D monitor`` sets the variable just before dispatching).
STATE_FILE: Path | None = None
EXIT_DRIFT = 3


class MonitorError(RuntimeError):
    """The monitor cannot run: missing capture, baseline or configuration (message says which)."""


# --- inputs ------------------------------------------------------------------------------------


def state_dir() -> Path:
    return Path(os.environ.get("SCONES_STATE_DIR") or ".scones")


def load_state(path: Path | None = None) -> dict[str, Any]:
    """Local mode's state file, or {} when local mode is not up."""
    path = path or STATE_FILE or state_dir() / "state.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise MonitorError(f"{path} is unreadable ({exc}); run `python -m local up` again") from exc


def s3_client(endpoint_url: str | None) -> Any:
    import boto3

    # AWS_ENDPOINT_URL_S3 (local mode) is honoured by boto3 itself when no URL is passed.
    local = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
    # moto accepts any credentials; a shell without AWS credentials must still reach it.
    creds = (
        {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        if local and not os.environ.get("AWS_ACCESS_KEY_ID")
        else {}
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        **creds,
    )


def load_baseline(source: str, s3: Any | None) -> dict[str, Any]:
    try:
        if source.startswith("s3://"):
            loc = parse_s3_uri(source)
            body = (s3 or s3_client(None)).get_object(Bucket=loc.bucket, Key=loc.prefix)["Body"]
            data = json.loads(body.read())
        else:
            data = json.loads(Path(source).read_text())
        return validate_baseline(data)
    except (OSError, json.JSONDecodeError, BaselineError, S3UriError) as exc:
        raise MonitorError(f"baseline {source}: {exc}") from exc
    except Exception as exc:  # botocore errors (no such key, connection refused)
        raise MonitorError(f"baseline {source}: {exc}") from exc


def load_thresholds(
    config: Path | None, confidence_threshold: float | None = None
) -> tuple[DriftThresholds, float, int]:
    """(drift thresholds, confidence threshold, window minutes) from the stack config.

    ``config`` is a ``Pulumi.<stack>.yaml``; its ``scones:*`` keys go through the same
    ``components.settings.Settings`` the Pulumi program uses, so local and cloud alarms agree.
    """
    from components.settings import NAMESPACE, Settings

    values: dict[str, Any] = {}
    if config is not None:
        try:
            import yaml

            doc = yaml.safe_load(config.read_text()) or {}
        except (OSError, ValueError) as exc:
            raise MonitorError(f"config {config}: {exc}") from exc
        for key, value in (doc.get("config") or {}).items():
            if key.startswith(f"{NAMESPACE}:"):
                raw = value.get("value", value) if isinstance(value, dict) else value
                values[key.split(":", 1)[1]] = (
                    raw if isinstance(raw, str) else json.dumps(raw)
                )
    try:
        settings = Settings.from_mapping(values.get)
    except ValueError as exc:
        raise MonitorError(str(exc)) from exc
    return (
        settings.drift_thresholds(),
        settings.confidence_threshold if confidence_threshold is None else confidence_threshold,
        settings.drift_window_minutes,
    )


def read_capture(
    capture: str,
    endpoint: str,
    variant: str,
    baseline: Mapping[str, Any],
    start: datetime | None,
    end: datetime | None,
    s3: Any | None,
) -> ParseResult:
    n_classes, size = len(baseline["classes"]), baseline["image_size"]
    if capture.startswith("s3://"):
        try:
            location = parse_s3_uri(capture)
            return read_s3_window(
                s3 or s3_client(None), location, endpoint, variant, start, end,
                n_classes=n_classes, image_size=size, max_records=1_000_000,
            )
        except S3UriError as exc:
            raise MonitorError(str(exc)) from exc
        except Exception as exc:  # botocore: no bucket, endpoint down
            raise MonitorError(f"cannot read capture {capture}: {exc}") from exc
    root = Path(capture)
    if not root.is_dir():
        raise MonitorError(f"capture directory {root} does not exist")
    return read_directory(
        root, endpoint, variant, n_classes=n_classes, image_size=size, start=start, end=end
    )


# --- time series for the plots -----------------------------------------------------------------


def buckets(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def series(
    parsed: ParseResult, baseline: Mapping[str, Any], confidence_threshold: float, size: int
) -> dict[str, Any]:
    """Per-bucket (``size`` consecutive requests) confidence, class shares and PSI."""
    obs = parsed.observations
    if not obs:
        return {"buckets": []}
    probs = np.array([o.probabilities for o in obs])
    conf = round_confidence(probs.max(axis=1))
    pred = probs.argmax(axis=1)
    stats = batch_statistics(np.stack([o.image for o in obs]))
    classes = list(baseline["classes"])
    rows = []
    for sl in buckets(len(obs), size):
        row: dict[str, Any] = {
            "first": sl.start,
            "count": sl.stop - sl.start,
            "time": obs[sl.start].time.isoformat(),
            "mean_confidence": float(conf[sl].mean()),
            "low_confidence_rate": float(np.mean(conf[sl] < confidence_threshold)),
            "class_share": {c: float(np.mean(pred[sl] == i)) for i, c in enumerate(classes)},
            "confidence_psi": psi_against(baseline["confidence"], conf[sl]),
            "psi": {
                name: psi_against(hist, stats[name][sl])
                for name, hist in baseline["statistics"].items()
                if name in stats
            },
        }
        rows.append(row)
    return {"bucket_size": size, "buckets": rows}


# --- output ------------------------------------------------------------------------------------


def format_summary(report: Mapping[str, Any]) -> str:
    m, counts = report["metrics"], report["counts"]
    window = report["window"]
    lines = [
        f"drift monitor: {report['endpoint']}/{report['variant']}  window "
        f"{window['start'] or 'all'} -> {window['end'] or 'now'}",
        f"requests: {counts['valid']} usable, {counts['corrupt']} corrupt"
        + (f" {counts['corrupt_by_reason']}" if counts["corrupt_by_reason"] else "")
        + f", {counts['files']} files",
        f"status: {report['status'].upper()}",
    ]
    if m.get("count"):
        lines.append(f"  {'MeanConfidence':<28}{m['MeanConfidence']:.4f}")
        for name, value in m.get("InputPSIByStatistic", {}).items():
            lines.append(f"  {'InputPSI[' + name + ']':<28}{value:.4f}")
    lines.append(f"  {'alarm':<28}{'value':>8}  {'threshold':>9}  state")
    for a in report["alarms"]:
        value = _fmt(a["value"])
        state = "WOULD FIRE" if a["firing"] else "ok"
        lines.append(f"  {a['key']:<28}{value:>8}  {a['threshold']:>9g}  {state}")
    firing = [a["key"] for a in report["alarms"] if a["firing"]]
    lines.append("alarms that would fire: " + (", ".join(firing) if firing else "none"))
    lines.extend(f"  - {r}" for r in report["reasons"])
    return "\n".join(lines)


def plot(report: Mapping[str, Any], ts: Mapping[str, Any], out: Path) -> list[str]:
    """Write the three PNGs; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ts.get("buckets", [])
    x = [r["first"] + r["count"] / 2 for r in rows]
    thresholds = report["thresholds"]
    names = []

    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(x, [r["mean_confidence"] for r in rows], marker=".", label="mean confidence")
    ax.plot(x, [r["low_confidence_rate"] for r in rows], marker=".",
            label=f"low-confidence rate (< {report['confidence_threshold']:g})")
    base_rate = report["metrics"].get("BaselineLowConfidenceRate")
    if base_rate is not None:
        ax.axhline(base_rate, color="tab:orange", ls=":", lw=1,
                   label="baseline low-confidence rate")
        ax.axhline(base_rate + thresholds["low_confidence_increase"], color="red", ls="--", lw=1,
                   label="LowConfidenceRate alarm (baseline + increase)")
    base_mean = report["baseline"].get("confidence_mean")
    if base_mean is not None:
        ax.axhline(base_mean, color="grey", ls=":", lw=1, label="baseline mean confidence")
    ax.set(xlabel="request number", ylim=(-0.02, 1.02), title="Confidence over time")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "confidence.png", dpi=100)
    plt.close(fig)
    names.append("confidence.png")

    fig, ax = plt.subplots(figsize=(8, 3.6))
    classes = list(report["baseline"]["classes"])
    tol = thresholds["class_share_tolerance"]
    expected = thresholds.get("expected_class_share") or {c: 1 / len(classes) for c in classes}
    for c in classes:
        line = ax.plot(x, [r["class_share"][c] for r in rows], marker=".", label=c)[0]
        ax.axhspan(expected[c] - tol, expected[c] + tol, color=line.get_color(), alpha=0.08)
    ax.set(xlabel="request number", ylabel="share", ylim=(-0.02, 1.02),
           title=f"Class share over time (band: expected ± {tol:g})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "class_share.png", dpi=100)
    plt.close(fig)
    names.append("class_share.png")

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    m = report["metrics"]
    by_stat = dict(m.get("InputPSIByStatistic", {}))
    labels = [*by_stat, "confidence"]
    values = [*by_stat.values(), m.get("ConfidencePSI") or 0.0]
    limits = [thresholds["input_psi"]] * len(by_stat) + [thresholds["confidence_psi"]]
    colours = ["tab:red" if v > t else "tab:blue" for v, t in zip(values, limits, strict=True)]
    left.bar(labels, values, color=colours)
    left.axhline(thresholds["input_psi"], color="red", ls="--", lw=1, label="alarm")
    left.set(title="PSI vs baseline (whole window)", ylabel="PSI")
    left.tick_params(axis="x", labelrotation=30, labelsize=7)
    left.legend(fontsize=7)
    if rows:
        for name in rows[0]["psi"]:
            right.plot(x, [r["psi"][name] for r in rows], marker=".", label=name)
        right.plot(x, [r["confidence_psi"] for r in rows], marker=".", ls="--",
                   label="confidence")
    right.axhline(thresholds["input_psi"], color="red", ls="--", lw=1)
    right.set(title=f"PSI per {ts.get('bucket_size', '?')}-request bucket",
              xlabel="request number", yscale="symlog")
    right.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "psi.png", dpi=100)
    plt.close(fig)
    names.append("psi.png")
    return names


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def write_html(report: Mapping[str, Any], images: Sequence[str], out: Path) -> Path:
    esc = html.escape
    rows = "".join(
        f"<tr class={'fire' if a['firing'] else 'ok'}><td>{esc(a['key'])}</td>"
        f"<td>{esc(a['metric'])}</td>"
        f"<td>{_fmt(a['value'])}</td>"
        f"<td>{a['threshold']:g}</td><td>{'WOULD FIRE' if a['firing'] else 'ok'}</td></tr>"
        for a in report["alarms"]
    )
    reasons = "".join(f"<li>{esc(r)}</li>" for r in report["reasons"])
    counts = esc(json.dumps(report["counts"]))
    imgs = "".join(f'<p><img src="{esc(n)}" alt="{esc(n)}"></p>' for n in images)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift report {esc(report['endpoint'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:left}}
tr.fire{{background:#fdd}}img{{max-width:100%}}</style></head><body>
<h1>Drift report: {esc(report['endpoint'])} / {esc(report['variant'])}</h1>
<p>Window {esc(str(report['window']['start']))} &rarr; {esc(str(report['window']['end']))};
status <b>{esc(report['status'])}</b></p>
<ul>{reasons}</ul>
<table><tr><th>alarm</th><th>metric</th><th>value</th><th>threshold</th><th>state</th></tr>
{rows}</table>
<p>Counts: <code>{counts}</code></p>
{imgs}
<p><a href="report.json">report.json</a></p>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page)
    return path


def write_report_folder(
    report: Mapping[str, Any], ts: Mapping[str, Any], out: Path
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps({**report, "series": ts}, indent=2, sort_keys=True)
    )
    images = plot(report, ts, out)
    return write_html(report, images, out)


# --- entry point -------------------------------------------------------------------------------


def run(
    *,
    capture: str,
    baseline_source: str,
    endpoint: str,
    variant: str,
    window_minutes: int | None,
    config: Path | None,
    report_dir: Path | None,
    s3_endpoint_url: str | None = None,
    stack: str = "local",
    now: datetime | None = None,
    bucket_size: int | None = None,
    confidence_threshold: float | None = None,
) -> tuple[dict[str, Any], Path | None]:
    """Analyse the capture and (with report_dir) write the report folder; returns (report, html).

    ``confidence_threshold`` overrides the config's (local mode passes the one it deployed).
    """
    thresholds, confidence_threshold, default_window = load_thresholds(
        config, confidence_threshold
    )
    needs_s3 = capture.startswith("s3://") or baseline_source.startswith("s3://")
    s3 = s3_client(s3_endpoint_url) if needs_s3 else None
    baseline = load_baseline(baseline_source, s3)
    if window_minutes == 0:
        start = end = None
    else:
        end = (now or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=1)
        start = end - timedelta(minutes=window_minutes or default_window)
    parsed = read_capture(capture, endpoint, variant, baseline, start, end, s3)
    report = build_report(
        parsed, baseline, endpoint=endpoint, variant=variant, stack=stack, start=start,
        end=end, confidence_threshold=confidence_threshold, thresholds=thresholds,
    )
    report["metric_points"] = [p.to_dict() for p in metric_points(report, stack, endpoint)]
    page = None
    if report_dir is not None:
        n = len(parsed.observations)
        size = bucket_size or max(thresholds.min_samples, -(-n // 30))
        ts = series(parsed, baseline, confidence_threshold, size)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        page = write_report_folder(report, ts, report_dir / stamp)
    return report, page


def main(argv: Sequence[str] | None = None) -> int:
    state = load_state()
    p = argparse.ArgumentParser(prog="python -m local monitor", description=__doc__.split("\n")[0])
    p.add_argument("--capture", default=state.get("capture_uri"),
                   help="s3://bucket/prefix or a capture directory (default: local mode's)")
    p.add_argument("--baseline", default=state.get("baseline_uri") or _model_baseline(state),
                   help="baseline.json path or s3:// URI (default: local mode's model)")
    p.add_argument("--endpoint-name", default=state.get("endpoint_name") or "scones-local")
    p.add_argument("--variant", default=state.get("variant") or "AllTraffic")
    p.add_argument("--s3-endpoint-url", default=state.get("moto_url"),
                   help="S3 endpoint (default: AWS_ENDPOINT_URL_S3 or local mode's moto server)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--window-minutes", type=int, default=None,
                       help="analyse the last N minutes (default: config driftWindowMinutes)")
    group.add_argument("--all", action="store_true", help="analyse the whole capture")
    p.add_argument("--config", type=Path, default=None, help="Pulumi.<stack>.yaml for thresholds")
    p.add_argument("--confidence-threshold", type=float, default=None,
                   help="low-confidence cut (default: local mode's, else config's)")
    p.add_argument("--report-dir", type=Path, default=state_dir() / "monitor",
                   help="where report folders go (default: <state dir>/monitor)")
    p.add_argument("--no-report", action="store_true", help="print only, write no report folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--fail-on-drift", action="store_true",
                   help=f"exit {EXIT_DRIFT} when an alarm would fire")
    p.add_argument("--no-safe-mode", action="store_true",
                   help="report only: do not switch local mode into safe mode on drift")
    args = p.parse_args(argv)
    if not args.capture or not args.baseline:
        p.error("no local mode state: pass --capture and --baseline (or run `python -m local up`)")
    if args.window_minutes is not None and args.window_minutes < 1:
        p.error("--window-minutes must be at least 1")
    try:
        report, page = run(
            capture=args.capture,
            baseline_source=args.baseline,
            endpoint=args.endpoint_name,
            variant=args.variant,
            window_minutes=0 if args.all else args.window_minutes,
            config=args.config,
            report_dir=None if args.no_report else args.report_dir,
            s3_endpoint_url=args.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3"),
            confidence_threshold=(
                args.confidence_threshold
                if args.confidence_threshold is not None
                else (None if args.config else state.get("threshold"))
            ),
        )
        acts = (
            report["drift"]
            and not args.no_safe_mode
            and state.get("safe_mode_function_arn")
            and args.capture == state.get("capture_uri")
        )
        safe_mode = enter_safe_mode(state, report) if acts else None
    except MonitorError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    if safe_mode is not None:
        report["safe_mode"] = safe_mode
    print(json.dumps(report, indent=2) if args.json else format_summary(report))
    if page is not None:
        print(f"report: {page}")
    if safe_mode is not None and not args.json:
        from local.safe_mode_cli import describe

        print(describe(safe_mode))
    return EXIT_DRIFT if args.fail_on_drift and report["drift"] else 0


def enter_safe_mode(state: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """Switch local mode into safe mode through its safe-mode function; its answer."""
    from local.deploy import aws_client
    from local.safe_mode_cli import invoke

    firing = [a["key"] for a in report["alarms"] if a["firing"]]
    payload = {
        "action": "enter",
        "by": "local monitor",
        "reason": f"drift alarms would fire: {', '.join(firing) or 'none'}"[:500],
    }
    try:
        return invoke(
            aws_client("lambda", state["moto_url"]), state["safe_mode_function_arn"], payload
        )
    except Exception as exc:  # SafeModeCallError, or botocore: the moto server is gone
        raise MonitorError(f"drift found, but safe mode could not be switched on: {exc}") from exc


def _model_baseline(state: Mapping[str, Any]) -> str | None:
    model = state.get("model_dir")
    return str(Path(model) / "baseline.json") if model else None


if __name__ == "__main__":
    sys.exit(main())
