"""Drift detection acceptance: no alarm on clean traffic, an alarm soon after each shift.

    .venv/bin/python -m benchmarks.drift_benchmark [--model DIR|model.tar.gz] [--data DIR]
        [--clean 1000] [--shift 100] [--window 100] [--step 10] [--out FILE]

What runs (the real path end to end): ``python -m local.endpoint_server`` serves the model with
data capture to a temporary directory; ``local.traffic`` sends ``--clean`` clean requests made
from the staged test images, then ``--shift`` requests of each shifted scenario (dark, noise,
blur, rotate, patterns). The capture files are read back with the detector's own parser
(``lambdas.detect_drift.capture``) and checked against the answers the client got (same count,
same probabilities, same order).

How alarms are evaluated: like the scheduled Lambda, the detector looks at the last
``--window`` requests every ``--step`` requests, with the default thresholds of
``components.settings`` (the values the CloudWatch alarms use) and
``lambdas.detect_drift.rules.evaluate``. Clean: every window over the clean traffic; no rule may
fire. Each shift: the traffic switches from clean to shifted, so the windows hold the last
clean requests followed by 10, 20, ... shifted ones; "requests to alarm" is the number of
shifted requests in the first window where a rule fires (target: at most 100).

Without --model/--data it uses local mode's model and staged data (``.scones/state.json``
from ``python -m local up``). Results go to benchmarks/results/drift.json; nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "drift.json"
ENDPOINT = "scones-bench"
VARIANT = "AllTraffic"
SHIFT_SCENARIOS = ("dark", "noise", "blur", "rotate", "patterns")


class BenchmarkError(RuntimeError):
    """The benchmark cannot run (missing model/data, endpoint failed, capture mismatch)."""


# --- the endpoint ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_endpoint(model: Path, capture_dir: Path, log: Path, timeout: float = 120.0) -> tuple[
    subprocess.Popen, str
]:
    """Start the local endpoint with capture; returns (process, base URL) once /ping is 200."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "local.endpoint_server", "--model", str(model), "--host",
        "127.0.0.1", "--port", str(port), "--capture", str(capture_dir),
        "--capture-flush-seconds", "1", "--endpoint-name", ENDPOINT, "--variant", VARIANT,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchmarkError(f"endpoint exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        time.sleep(0.3)
    stop_endpoint(proc)
    raise BenchmarkError(f"endpoint not ready after {timeout:.0f}s: {log.read_text()[-2000:]}")


def stop_endpoint(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM: the server flushes its capture before it exits."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- evaluation ----------------------------------------------------------------------------------


def evaluate_windows(
    probs: np.ndarray,
    images: np.ndarray,
    ends: Sequence[int],
    window: int,
    baseline: Mapping[str, Any],
    thresholds: Any,
    confidence_threshold: float,
) -> list[dict[str, Any]]:
    """Analyse the window of ``window`` requests ending at each index in ``ends``."""
    from lambdas.detect_drift.analysis import analyse

    out = []
    for end in ends:
        sl = slice(max(0, end - window), end)
        result = analyse(probs[sl], images[sl], baseline, thresholds, confidence_threshold)
        out.append(
            {
                "end": int(end),
                "status": result["status"],
                "firing": [a["key"] for a in result["alarms"] if a["firing"]],
                "values": {a["key"]: a["value"] for a in result["alarms"]},
                "metrics": result["metrics"],
            }
        )
    return out


def _segment_summary(
    probs: np.ndarray, labels: np.ndarray | None, confidence_threshold: float
) -> dict[str, Any]:
    conf = probs.max(axis=1)
    summary: dict[str, Any] = {
        "requests": len(probs),
        "mean_confidence": float(conf.mean()),
        "low_confidence_rate": float(np.mean(conf < confidence_threshold)),
        "class_share": np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]).tolist(),
    }
    if labels is not None and np.all(labels >= 0):
        summary["accuracy"] = float(np.mean(probs.argmax(axis=1) == labels))
    return summary


def run_scenarios(
    model: Path,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    baseline: Mapping[str, Any],
    thresholds: Any,
    confidence_threshold: float,
    clean: int = 1000,
    shift: int = 100,
    window: int = 100,
    step: int = 10,
    scenarios: Sequence[str] = SHIFT_SCENARIOS,
    seed: int = 0,
    workdir: Path,
) -> dict[str, Any]:
    """Send the traffic through a capturing local endpoint and evaluate the alarms."""
    from lambdas.detect_drift.capture import read_directory
    from local.traffic import EndpointClient, scenario_sample, send

    if clean < window:
        raise BenchmarkError(f"--clean ({clean}) must be at least --window ({window})")
    capture_dir = workdir / "capture"
    segments: list[tuple[str, list[np.ndarray], np.ndarray]] = []
    images, idx = scenario_sample("clean", test_images, clean, seed)
    segments.append(("clean", images, idx))
    for k, name in enumerate(scenarios, start=1):
        images, idx = scenario_sample(name, test_images, shift, seed + k)
        segments.append((name, images, idx))

    proc, url = start_endpoint(model, capture_dir, workdir / "endpoint.log")
    answers: list[list[float]] = []
    t0 = time.perf_counter()
    try:
        client = EndpointClient(url, ENDPOINT)
        for _, images, _ in segments:
            answers.extend(send(client, images))
        client.close()
    finally:
        send_s = time.perf_counter() - t0
        stop_endpoint(proc)

    t0 = time.perf_counter()
    parsed = read_directory(
        capture_dir, ENDPOINT, VARIANT, n_classes=len(baseline["classes"]),
        image_size=baseline["image_size"],
    )
    read_s = time.perf_counter() - t0
    obs = parsed.observations
    sent = np.round(np.array(answers, dtype=np.float64), 4)
    got = np.array([o.probabilities for o in obs], dtype=np.float64)
    order_ok = len(obs) == len(answers) and bool(np.allclose(np.round(got, 4), sent, atol=1e-4))
    if not order_ok:
        raise BenchmarkError(
            f"capture does not match the traffic: sent {len(answers)}, captured {len(obs)} "
            f"usable ({dict(parsed.corrupt)} corrupt)"
        )
    probs = got
    decoded = np.stack([o.image for o in obs])

    clean_probs, clean_imgs = probs[:clean], decoded[:clean]
    clean_eval = evaluate_windows(
        clean_probs, clean_imgs, range(window, clean + 1, step), window, baseline, thresholds,
        confidence_threshold,
    )
    fired = [e for e in clean_eval if e["firing"]]
    peak: dict[str, float] = {}
    for e in clean_eval:
        for key, value in e["values"].items():
            if value is not None:
                peak[key] = max(peak.get(key, 0.0), value)
    results: dict[str, Any] = {
        "clean": {
            **_segment_summary(clean_probs, test_labels[segments[0][2]], confidence_threshold),
            "evaluations": len(clean_eval),
            "evaluations_with_alarm": len(fired),
            "alarms_fired": sorted({k for e in fired for k in e["firing"]}),
            "max_value_per_alarm": peak,
        },
        "scenarios": {},
    }
    offset = clean
    tail = slice(clean - window, clean)
    for name, _, idx in segments[1:]:
        seg = slice(offset, offset + shift)
        offset += shift
        seq_probs = np.concatenate([probs[tail], probs[seg]])
        seq_imgs = np.concatenate([decoded[tail], decoded[seg]])
        before, *evals = evaluate_windows(
            seq_probs, seq_imgs, range(window, window + shift + 1, step), window,
            baseline, thresholds, confidence_threshold,
        )
        first = next((e for e in evals if e["firing"]), None)
        full = evals[-1] if evals else None
        labels = test_labels[idx] if np.all(idx >= 0) else None
        results["scenarios"][name] = {
            **_segment_summary(probs[seg], labels, confidence_threshold),
            "requests_to_alarm": None if first is None else first["end"] - window,
            "firing_before_shift": before["firing"],
            "alarms_at_first_detection": [] if first is None else first["firing"],
            "alarms_with_full_window": [] if full is None else full["firing"],
            "full_window_values": None if full is None else full["values"],
            "full_window_input_psi": (
                None if full is None else full["metrics"].get("InputPSIByStatistic")
            ),
        }
    results["capture"] = {
        "sent": len(answers),
        "captured_usable": len(obs),
        "corrupt": int(sum(parsed.corrupt.values())),
        "files": parsed.files,
        "matches_client_answers_in_order": order_ok,
        "send_seconds": round(send_s, 2),
        "requests_per_second": round(len(answers) / send_s, 1) if send_s else None,
        "read_and_decode_seconds": round(read_s, 3),
    }
    t0 = time.perf_counter()
    evaluate_windows(probs, decoded, [len(probs)], len(probs), baseline, thresholds,
                     confidence_threshold)
    results["capture"]["analyse_all_seconds"] = round(time.perf_counter() - t0, 3)
    return results


def acceptance(results: Mapping[str, Any], shift_limit: int = 100) -> dict[str, Any]:
    scen = results["scenarios"]
    return {
        "no_alarm_on_clean": results["clean"]["evaluations_with_alarm"] == 0,
        "alarm_within_limit_for_each_shift": all(
            s["requests_to_alarm"] is not None and s["requests_to_alarm"] <= shift_limit
            for s in scen.values()
        ),
        "shift_limit": shift_limit,
    }


# --- CLI ---------------------------------------------------------------------------------------


def _model_dir(model: Path, workdir: Path) -> Path:
    if model.is_dir():
        return model
    if model.is_file() and model.name.endswith(".tar.gz"):
        dest = workdir / "model"
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(model) as tar:
            tar.extractall(dest, filter="data")
        return dest
    raise BenchmarkError(f"model {model} is neither a model directory nor a model.tar.gz")


def main(argv: Sequence[str] | None = None) -> int:
    from local.monitor import load_state

    state = load_state()
    p = argparse.ArgumentParser(prog="python -m benchmarks.drift_benchmark",
                                description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=state.get("model_dir"))
    p.add_argument("--data", type=Path, default=state.get("data_dir"),
                   help="staged data dir (python -m training.stage --out DIR)")
    p.add_argument("--clean", type=int, default=1000)
    p.add_argument("--shift", type=int, default=100)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--step", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.model is None or args.data is None:
        p.error("no local mode state: pass --model and --data (or run `python -m local up`)")

    from components.settings import Settings
    from local.traffic import load_source
    from training.baseline import validate_baseline

    settings = Settings.from_mapping({}.get)
    thresholds = settings.drift_thresholds()
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        workdir = Path(tmp)
        try:
            model = _model_dir(Path(args.model), workdir)
            baseline = validate_baseline(json.loads((model / "baseline.json").read_text()))
            images, labels = load_source(Path(args.data) / "test")
            t0 = time.perf_counter()
            results = run_scenarios(
                model, images, labels, baseline=baseline, thresholds=thresholds,
                confidence_threshold=settings.confidence_threshold, clean=args.clean,
                shift=args.shift, window=args.window, step=args.step, seed=args.seed,
                workdir=workdir,
            )
            wall = time.perf_counter() - t0
        except (BenchmarkError, OSError, ValueError) as exc:
            print(f"drift benchmark: {exc}", file=sys.stderr)
            return 2
    metrics_path = Path(args.model) / "metrics.json" if Path(args.model).is_dir() else None
    model_metrics = (
        json.loads(metrics_path.read_text()) if metrics_path and metrics_path.is_file() else {}
    )
    doc = {
        "benchmark": "drift",
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "model": {
            "path": str(args.model),
            "test_accuracy": (model_metrics.get("test") or {}).get("accuracy"),
            "epochs": (model_metrics.get("training") or {}).get("epochs"),
            "hyperparameters": (model_metrics.get("training") or {}).get("hyperparameters"),
            "baseline_statistics_images": baseline.get("statistics_count", baseline["count"]),
            "baseline_images": baseline["count"],
            "baseline_bins": baseline.get("bins"),
        },
        "protocol": {
            "clean_requests": args.clean,
            "shift_requests": args.shift,
            "window_requests": args.window,
            "evaluate_every_requests": args.step,
            "source": f"{args.data}/test ({len(images)} images)",
            "seed": args.seed,
        },
        "confidence_threshold": settings.confidence_threshold,
        "thresholds": thresholds.to_dict(),
        **results,
        "acceptance": acceptance(results, args.shift),
        "wall_seconds": round(wall, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    clean = doc["clean"]
    print(f"clean: {clean['requests']} requests, {clean['evaluations']} windows, "
          f"{clean['evaluations_with_alarm']} with an alarm; peaks {clean['max_value_per_alarm']}")
    for name, s in doc["scenarios"].items():
        print(f"{name:>9}: alarm after {s['requests_to_alarm']} shifted requests "
              f"({', '.join(s['alarms_at_first_detection']) or 'none'}); "
              f"accuracy {s.get('accuracy', float('nan')):.3f}, "
              f"mean confidence {s['mean_confidence']:.3f}")
    print(f"acceptance: {doc['acceptance']}  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
