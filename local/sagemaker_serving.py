"""Serving parity: SageMaker's real PyTorch serving stack, run here, against local.endpoint_server.

    python -m local.sagemaker_serving --model model.tar.gz [--images DIR] [--root DIR]

Lays out `ROOT/model` from model.tar.gz as SageMaker does for /opt/ml/model (the root is
SAGEMAKER_BASE_DIR, the toolkit's own variable, because /opt/ml is not writable everywhere),
starts the stack as the PyTorch inference image's entrypoint does (the vCPU count written to
SAGEMAKER_MODEL_SERVER_WORKERS, then sagemaker_pytorch_serving_container.serving.main(): the
toolkit writes the TorchServe config and starts TorchServe, Java), with the environment the
Pulumi Model sets (training.serving_environment), and answers the same requests with it and
with local.endpoint_server: probabilities, every error answer, /ping. Exit status 0 when every
check agrees, 1 otherwise; the report is JSON on stdout.

Needs `java` (17, as the image) and the packages of requirements-dev.txt (torchserve 0.12.0,
sagemaker-pytorch-inference 2.0.25: the PyTorch 2.6 inference DLC's versions). The toolkit
writes its config to the fixed path /etc/sagemaker-ts.properties and refuses to run beside a
second TorchServe (torchserve.py `_retrieve_ts_server_process`), and TorchServe's workers use
fixed sockets (/tmp/.ts.sock.9000, ...), so one stack runs at a time on a machine:
`ServingStack` holds a lock file for its lifetime.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.serving_environment import serving_environment

LOCK_PATH = Path(tempfile.gettempdir()) / "scones-sagemaker-serving.lock"
REPO_ROOT = Path(__file__).resolve().parent.parent
# sagemaker-pytorch-inference 2.0.25 imports pkg_resources, gone from setuptools >= 81: where the
# environment's setuptools is newer, a setuptools 80 installed here (pip install --target) is put
# on the stack's PYTHONPATH only. $SCONES_SERVING_SITE overrides the place.
SUPPORT_SITE = Path(
    os.environ.get("SCONES_SERVING_SITE", REPO_ROOT / ".scones" / "serving-support")
)
TS_CONFIG_FILE = Path("/etc/sagemaker-ts.properties")  # sagemaker_pytorch_serving_container
START_TIMEOUT = 90.0


class StackUnavailable(RuntimeError):
    """The real serving stack cannot run here (no Java, no TorchServe, /etc not writable)."""


class StackError(RuntimeError):
    """The real serving stack did not come up; the message names its log."""


def unavailable_reason() -> str | None:
    """Why the real stack cannot run on this machine, or None when it can."""
    if shutil.which("java") is None:
        return "java is not on PATH (the PyTorch inference image runs TorchServe on Java 17)"
    for module in ("ts", "sagemaker_pytorch_serving_container", "sagemaker_inference"):
        try:
            __import__(module)
        except ImportError:
            return f"python package {module!r} is missing (pip install -r requirements-dev.txt)"
    if not _has_pkg_resources():
        return (
            "pkg_resources is missing (setuptools >= 81): pip install --target "
            f"{SUPPORT_SITE} setuptools==80.10.2"
        )
    if shutil.which("torchserve", path=_bin_path()) is None:
        return "the torchserve command is not installed"
    if not os.access(TS_CONFIG_FILE.parent, os.W_OK):
        return f"{TS_CONFIG_FILE.parent} is not writable (the toolkit writes {TS_CONFIG_FILE})"
    return None


def _has_pkg_resources() -> bool:
    import importlib.util

    return (
        importlib.util.find_spec("pkg_resources") is not None
        or (SUPPORT_SITE / "pkg_resources").is_dir()
    )


def _python_path() -> str:
    paths = [str(REPO_ROOT)]
    if (SUPPORT_SITE / "pkg_resources").is_dir():
        paths.append(str(SUPPORT_SITE))
    return os.pathsep.join(paths)


def _bin_path() -> str:
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def layout_model_dir(model: str | Path, root: Path) -> Path:
    """ROOT/model as SageMaker fills /opt/ml/model: model.tar.gz unpacked, or a dir copied."""
    target = root / "model"
    if target.exists():
        shutil.rmtree(target)
    source = Path(model)
    if source.is_dir():
        shutil.copytree(source, target)
        return target
    target.mkdir(parents=True)
    with tarfile.open(source, "r:*") as archive:
        archive.extractall(target, filter="data")
    return target


def container_environment(root: Path, port: int, metrics_port: int) -> dict[str, str]:
    """The process environment of the serving container: the Model's variables + local ports."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SAGEMAKER_", "TS_", "SCONES_", "OMP_", "PYTHONPATH"))
    }
    env.update(serving_environment(os.environ.get("AWS_REGION", "us-east-1")))
    env.update(
        {
            "PATH": _bin_path(),
            "SAGEMAKER_BASE_DIR": str(root),  # the toolkit's model_dir is $SAGEMAKER_BASE_DIR/model
            "SAGEMAKER_BIND_TO_PORT": str(port),  # 8080 in the cloud; a free port here
            # TorchServe's env overrides (enable_envvars_config=true in the toolkit's config):
            # loopback only, and a metrics port that cannot collide with the default 8082.
            "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{port}",
            "TS_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{port}",
            "TS_METRICS_ADDRESS": f"http://127.0.0.1:{metrics_port}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _entrypoint() -> None:
    """What the image's /usr/local/bin/dockerd-entrypoint.py does for `serve`."""
    os.environ["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(multiprocessing.cpu_count())
    from sagemaker_pytorch_serving_container import serving

    serving.main()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HttpAnswer:
    status: int
    body: bytes
    content_type: str


def request(
    url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None, timeout=30.0
) -> HttpAnswer:
    """One HTTP request; any status is an answer (urllib raises for >= 400)."""
    req = urllib.request.Request(url, data=body, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpAnswer(resp.status, resp.read(), resp.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read(), exc.headers.get("Content-Type", ""))


class ServingStack:
    """The real serving stack on a free loopback port; a context manager.

    `start()` returns once the port answers /ping (which, in TorchServe, may be before the model
    loaded: see docs/sagemaker-parity.md); `wait_ready()` waits for the first 200 invocation.
    """

    def __init__(
        self,
        model: str | Path,
        root: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """`extra_env` adds to the Model's environment (for experiments such as benchmarks)."""
        self._model = Path(model)
        self._extra_env = dict(extra_env or {})
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="scones-opt-ml-")) if root is None else root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.root / "serving.log"
        self._proc: subprocess.Popen | None = None
        self._lock: Any = None

    def __enter__(self) -> ServingStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT) -> ServingStack:
        reason = unavailable_reason()
        if reason:
            raise StackUnavailable(reason)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(LOCK_PATH, "w")  # noqa: SIM115 - held until stop()
        try:
            self._take_lock(timeout)
            layout_model_dir(self._model, self.root)
            env = {**container_environment(self.root, self.port, _free_port()), **self._extra_env}
            log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", "import local.sagemaker_serving as s; s._entrypoint()"],
                    cwd=self.root,  # the toolkit's model store is ./.sagemaker/ts/models
                    env={**env, "PYTHONPATH": _python_path()},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                log.close()
            self._wait_port(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _take_lock(self, timeout: float) -> None:
        """One toolkit-run TorchServe per machine (fixed config path, worker sockets, pid scan)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"another real serving stack holds {LOCK_PATH} (one runs at a time)"
                    ) from None
                time.sleep(0.2)

    def _wait_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise StackError(f"the serving stack exited {self._proc.returncode}: {self.log()}")
            try:
                request(f"{self.url}/ping", timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise StackError(f"the serving stack did not open {self.url} in {timeout:.0f} s")

    def wait_ready(self, body: bytes, timeout: float = START_TIMEOUT) -> float:
        """Seconds until an image/png invocation answers 200 (the model is loaded)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            answer = request(
                f"{self.url}/invocations", body, {"Content-Type": "image/png"}, timeout=timeout
            )
            if answer.status == 200:
                return time.monotonic() - started
            time.sleep(0.2)
        raise StackError(f"no 200 invocation in {timeout:.0f} s: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM the entrypoint's session (the toolkit forwards it to TorchServe), then wait."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc is not None:
            # TorchServe's Java process and its Python workers share the session: end stragglers.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


# --- the parity checks ----------------------------------------------------------------------------

def error_cases(png: bytes) -> list[tuple[str, bytes, dict[str, str]]]:
    """(name, body, headers) of every error answer the contract fixes."""
    from training.inference import MAX_PAYLOAD_BYTES

    return [
        ("unsupported content type", png, {"Content-Type": "text/plain"}),
        ("PNG sent as application/json", png, {"Content-Type": "application/json"}),
        ("JSON sent as application/json", b'{"image": 1}', {"Content-Type": "application/json"}),
        ("non-image body", b"this is not an image", {"Content-Type": "image/png"}),
        ("oversized body", b"\0" * (MAX_PAYLOAD_BYTES + 1024), {"Content-Type": "image/png"}),
        ("Accept it cannot meet", png, {"Content-Type": "image/png", "Accept": "text/csv"}),
    ]


def describe(answer: HttpAnswer) -> dict[str, Any]:
    """Status, media type and the parsed JSON body (or the raw text when it is not JSON)."""
    try:
        body: Any = json.loads(answer.body)
        is_json = True
    except ValueError:
        body = answer.body.decode("utf-8", errors="replace")[:300]
        is_json = False
    return {
        "status": answer.status,
        "content_type": answer.content_type.split(";")[0].strip(),
        "json": is_json,
        "body": body,
    }


def compare(real_url: str, local_url: str, images: Sequence[bytes]) -> dict[str, Any]:
    """Send the same requests to both servers; report every difference."""
    report: dict[str, Any] = {"images": len(images), "differences": []}
    for index, png in enumerate(images):
        real = describe(request(f"{real_url}/invocations", png, {"Content-Type": "image/png"}))
        local = describe(request(f"{local_url}/invocations", png, {"Content-Type": "image/png"}))
        if real != local:
            report["differences"].append({"case": f"image {index}", "real": real, "local": local})
    report["errors"] = {}
    for name, body, headers in error_cases(images[0]):
        real = describe(request(f"{real_url}/invocations", body, headers))
        local = describe(request(f"{local_url}/invocations", body, headers))
        report["errors"][name] = {"real": real, "local": local}
        if real != local:
            report["differences"].append({"case": name, "real": real, "local": local})
    return report


def _images(directory: Path | None, count: int) -> list[bytes]:
    if directory is not None:
        files = sorted(p for p in directory.rglob("*.png"))[:count]
        if not files:
            raise SystemExit(f"no .png under {directory}")
        return [p.read_bytes() for p in files]
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


@contextlib.contextmanager
def local_server(model: Path) -> Iterator[str]:
    from local.endpoint_server import EndpointServer

    server = EndpointServer(model, "127.0.0.1", 0).start()
    try:
        server.wait_loaded(120)
        yield server.url
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.sagemaker_serving", description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="model.tar.gz or model dir")
    parser.add_argument("--images", type=Path, help="directory of .png test images")
    parser.add_argument("--count", type=int, default=200, help="images to compare (default 200)")
    parser.add_argument("--root", type=Path, help="stands for /opt/ml (default: a temp dir)")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"sagemaker_serving: cannot run the real stack here: {reason}", file=sys.stderr)
        return 2
    images = _images(args.images, args.count)
    os.environ.setdefault("SCONES_TORCH_THREADS", "1")
    with ServingStack(args.model, args.root) as stack, local_server(args.model) as local_url:
        ready = stack.wait_ready(images[0])
        report = compare(stack.url, local_url, images)
        report["real_ready_after_s"] = round(ready, 2)
    report["parity"] = not report["differences"]
    print(json.dumps(report, indent=2))
    return 0 if report["parity"] else 1


if __name__ == "__main__":
    sys.exit(main())
