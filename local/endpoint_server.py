"""Local SageMaker endpoint: serves a model artifact over SageMaker's container contract.

    python -m local.endpoint_server --model PATH --host 127.0.0.1 --port 8080 \\
        [--capture DIR|s3://bucket/prefix] [--capture-percent 100] \\
        [--endpoint-name scones-local] [--variant AllTraffic]

PATH is a model directory (what SM_MODEL_DIR holds) or its model.tar.gz. Two faces:

- The container contract (docs/design.md): `GET /ping` (200 once the model is loaded, 503 before,
  500 ModelLoadFailed for a broken artifact, which invocations then answer too),
  `POST /invocations` with image/png, image/jpeg or application/x-image bytes -> 200 JSON list of
  class probabilities; errors 415 / 400 / 413 (and 406 for an Accept it cannot meet) with the
  JSON body {"error": NAME, "message": TEXT}.
- The runtime API path `POST /endpoints/<name>/invocations`, which boto3's
  `sagemaker-runtime.invoke_endpoint` calls when AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME points here.
  It answers as the SageMaker runtime does: success with the x-Amzn-Invoked-Production-Variant
  header; a container error as 424 `ModelError` carrying OriginalStatusCode / OriginalMessage;
  an unknown endpoint name as 400 `ValidationError`; a model still loading as 429
  `ModelNotReadyException`. boto3 therefore raises the same ClientError codes locally as in AWS.

Requests go through training.inference.respond (input_fn/predict_fn/output_fn), the code path
SageMaker's PyTorch image calls through the artifact's transform_fn (training/sagemaker_entry.py).
Successful invocations are captured (local/capture.py) in SageMaker Data Capture's format on a
background thread. SIGTERM/SIGINT stop accepting, finish in-flight requests,
flush capture, and exit 0.
"""

from __future__ import annotations

import argparse
import http.server
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.capture import CaptureError, CaptureWriter
from training import inference
from training.errors import ModelArtifactError, PayloadTooLarge

LOG = logging.getLogger("local.endpoint_server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_ENDPOINT_NAME = "scones-local"
DEFAULT_VARIANT = "AllTraffic"
# Account id shown in runtime error messages, as AWS formats them (local mode has no account).
LOCAL_ACCOUNT = "000000000000"
# A body over the limit is read and discarded up to this size so the client gets the 413 answer
# on a healthy connection; anything bigger is refused and the connection closed.
DRAIN_LIMIT = 64 * 1024 * 1024
# Idle keep-alive connections are closed after this many seconds (SageMaker allows 60 s).
IDLE_TIMEOUT = 60.0
# The SageMaker runtime API's InvokeEndpoint path (botocore: /endpoints/{EndpointName}/invocations).
_RUNTIME_PATH = re.compile(r"/endpoints/([^/]+)/invocations")


@dataclass
class Response:
    """What one request answers: status, body bytes, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


def _json(status: int, payload: Any, **kwargs: Any) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), **kwargs)


def container_error(status: int, name: str, message: str) -> Response:
    """A container-contract error: the status and {"error": NAME, "message": TEXT}."""
    return _json(status, {"error": name, "message": message})


def runtime_error(status: int, code: str, message: str, **fields: Any) -> Response:
    """A SageMaker runtime API error as botocore parses it (rest-json, x-amzn-ErrorType)."""
    return _json(status, {"Message": message, **fields}, headers={"x-amzn-ErrorType": code})


def as_runtime_response(container: Response, variant: str) -> Response:
    """Translate a container answer into what InvokeEndpoint returns to the caller.

    A non-200 container answer becomes 424 ModelError with the container's status and body in
    OriginalStatusCode / OriginalMessage, which is how SageMaker reports model errors.
    """
    if container.status == 200:
        headers = {**container.headers, "x-Amzn-Invoked-Production-Variant": variant}
        return Response(200, container.body, container.content_type, headers, container.close)
    kind = "client" if container.status < 500 else "server"
    original = container.body.decode("utf-8", errors="replace")
    message = (
        f'Received {kind} error ({container.status}) from primary with message "{original}". '
        f"See the local endpoint's log for more information."
    )
    response = runtime_error(
        424,
        "ModelError",
        message,
        OriginalStatusCode=container.status,
        OriginalMessage=original,
        LogStreamArn=f"local:{variant}",
    )
    response.close = container.close
    return response


def prepare_model_dir(path: str | Path) -> tuple[Path, Callable[[], None]]:
    """A model directory for `path` (dir or model.tar.gz) and a cleanup callable.

    A tarball is unpacked into a temporary directory (tarfile's "data" filter refuses absolute
    paths, links out of the tree and device files); the cleanup removes it.
    """
    source = Path(path)
    if source.is_dir():
        return source, lambda: None
    if not source.is_file():
        raise ModelArtifactError(f"model path {source} does not exist")
    target = Path(tempfile.mkdtemp(prefix="scones-model-"))
    try:
        with tarfile.open(source, "r:*") as archive:
            archive.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ModelArtifactError(f"{source} is not a readable model tarball ({exc})") from exc
    return target, lambda: shutil.rmtree(target, ignore_errors=True)


def load_model(path: str | Path) -> tuple[inference.LoadedModel, Callable[[], None]]:
    """Prepare and load the artifact at `path` with the SageMaker hook model_fn."""
    model_dir, cleanup = prepare_model_dir(path)
    try:
        return inference.model_fn(str(model_dir)), cleanup
    except BaseException:
        cleanup()
        raise


def invoke(
    model: inference.LoadedModel, body: bytes, content_type: str | None, accept: str | None
) -> Response:
    """One request through training.inference.respond, the answer the cloud container gives."""
    reply = inference.respond(model, body, content_type, accept)
    return Response(reply.status, reply.body.encode("utf-8"), reply.content_type)


class _State:
    """Model, capture and lifecycle shared by the request threads."""

    def __init__(
        self,
        endpoint_name: str,
        variant: str,
        capture: CaptureWriter | None,
        capture_percent: float,
        access_log: bool,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.variant = variant
        self.capture = capture
        self.capture_percent = capture_percent
        self.access_log = access_log
        self.model: inference.LoadedModel | None = None
        self.load_error: BaseException | None = None
        self.loaded = threading.Event()  # set on success or failure
        self.stopping = False
        self._in_flight = 0
        self._idle = threading.Condition()

    def begin(self) -> None:
        with self._idle:
            self._in_flight += 1

    def end(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def maybe_capture(self, body: bytes, content_type: str, response: Response, event_id: str):
        if self.capture is None or response.status != 200:
            return
        if self.capture_percent < 100 and random.random() * 100 >= self.capture_percent:
            return
        try:
            self.capture.record(
                body,
                content_type,
                response.body.decode("utf-8"),
                response.content_type,
                event_id=event_id,
            )
        except CaptureError as exc:  # never fail a served request because capture is closing
            LOG.warning("request not captured: %s", exc)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: boto3 and benchmark clients reuse connections
    server_version = "scones-local-endpoint"
    # Buffer the response so status line, headers and body leave in one write (one TCP segment
    # for small answers); BaseHTTPRequestHandler flushes after each request.
    wbufsize = 64 * 1024
    timeout = IDLE_TIMEOUT
    state: _State  # set on the per-server subclass

    def setup(self) -> None:
        super().setup()
        # Small request/response pairs: Nagle's algorithm plus delayed ACKs would add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if self.state.access_log:
            super().log_message(format, *args)

    # --- routing ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/ping":
            self._send(self._ping())
        else:
            self._send(container_error(404, "NotFound", f"no route for GET {path}"))

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/invocations":
            self._invocation(runtime=False)
            return
        match = _RUNTIME_PATH.fullmatch(path)
        if match:
            self._invocation(runtime=True, endpoint=urllib.parse.unquote(match.group(1)))
            return
        self._discard_body()
        self._send(container_error(404, "NotFound", f"no route for POST {path}"))

    def do_PUT(self) -> None:
        self._not_allowed()

    do_DELETE = do_PATCH = do_PUT

    def _not_allowed(self) -> None:
        self._discard_body()
        response = container_error(405, "MethodNotAllowed", f"{self.command} is not supported")
        response.headers["Allow"] = "GET, POST"
        self._send(response)

    # --- endpoints ------------------------------------------------------------------------------

    def _ping(self) -> Response:
        state = self.state
        if state.model is not None:
            return _json(200, {"status": "Healthy"})
        if state.load_error is not None:
            return Response(500, inference.load_failed_body(state.load_error).encode())
        return container_error(503, "ModelNotReady", "the model is still loading")

    def _invocation(self, runtime: bool, endpoint: str | None = None) -> None:
        state = self.state
        state.begin()
        try:
            request_id = str(uuid.uuid4())
            response = self._answer(runtime, endpoint, request_id)
            response.headers["x-amzn-RequestId"] = request_id
            self._send(response)
        finally:
            state.end()

    def _answer(self, runtime: bool, endpoint: str | None, request_id: str) -> Response:
        state = self.state
        if runtime and endpoint != state.endpoint_name:
            self._discard_body()
            return runtime_error(
                400,
                "ValidationError",
                f"Endpoint {endpoint} of account {LOCAL_ACCOUNT} not found.",
            )
        target_variant = self.headers.get("X-Amzn-SageMaker-Target-Variant")
        if runtime and target_variant and target_variant != state.variant:
            self._discard_body()
            return runtime_error(
                400,
                "ValidationError",
                f"Variant {target_variant} not found for endpoint {endpoint}.",
            )
        body_or_error = self._read_body()
        if isinstance(body_or_error, Response):
            container = body_or_error
        elif state.stopping:
            container = container_error(503, "ServiceUnavailable", "the endpoint is stopping")
            container.close = True
        elif state.model is None and state.load_error is not None:
            # What the cloud container answers for a broken artifact (training/sagemaker_entry.py).
            container = Response(500, inference.load_failed_body(state.load_error).encode())
        elif state.model is None:
            if runtime:
                return runtime_error(
                    429, "ModelNotReadyException", f"Model for endpoint {endpoint} is not ready."
                )
            container = container_error(503, "ModelNotReady", "the model is still loading")
        else:
            content_type = self.headers.get("Content-Type")
            container = invoke(state.model, body_or_error, content_type, self.headers.get("Accept"))
            state.maybe_capture(body_or_error, content_type or "", container, request_id)
        if not runtime:
            if container.status == 200:
                container.headers["x-Amzn-Invoked-Production-Variant"] = state.variant
            return container
        return as_runtime_response(container, state.variant)

    # --- body and response ----------------------------------------------------------------------

    def _read_body(self) -> bytes | Response:
        """The request body, or the error Response (413 over the limit, 400 malformed)."""
        limit = inference.MAX_PAYLOAD_BYTES
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return container_error(411, "LengthRequired", "Content-Length header is required")
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            response = container_error(400, "BadRequest", f"bad Content-Length {raw_length!r}")
            response.close = True
            return response
        if length > limit:
            return self._too_large(length, drain=length)
        return self.rfile.read(length)

    def _read_chunked(self, limit: int) -> bytes | Response:
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > DRAIN_LIMIT:
                    response = self._too_large(total, drain=0)
                    response.close = True  # the rest of the body is unread
                    return response
                data = self.rfile.read(size)
                self.rfile.readline(1024)
                if total <= limit:
                    chunks.append(data)
        except ValueError:
            response = container_error(400, "BadRequest", "malformed chunked body")
            response.close = True
            return response
        if total > limit:
            return self._too_large(total, drain=0)
        return b"".join(chunks)

    def _too_large(self, length: int, drain: int) -> Response:
        error = PayloadTooLarge(
            f"request body is {length} bytes, over the limit of {inference.MAX_PAYLOAD_BYTES}"
        )
        response = container_error(error.status, error.name, str(error))
        if drain > DRAIN_LIMIT:
            response.close = True  # too big to read through: answer, then drop the connection
        elif drain:
            remaining = drain
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1024 * 1024))
                if not chunk:
                    break
                remaining -= len(chunk)
        return response

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if 0 < length <= DRAIN_LIMIT:
            self.rfile.read(length)
        elif length or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.close or self.state.stopping:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(response.body)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block shutdown
    block_on_close = False
    request_queue_size = 128  # concurrent benchmark clients connect at once


class EndpointServer:
    """The local endpoint: an HTTP server plus a model that loads in the background.

    `start()` listens at once (so /ping can answer 503 while loading) and loads the model on a
    thread; `stop()` stops accepting, waits for in-flight requests, then flushes capture.
    `loader` returns (LoadedModel, cleanup); it defaults to loading `model_path`.
    """

    def __init__(
        self,
        model_path: str | Path | None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        endpoint_name: str = DEFAULT_ENDPOINT_NAME,
        variant: str = DEFAULT_VARIANT,
        capture: CaptureWriter | None = None,
        capture_percent: float = 100.0,
        access_log: bool = False,
        loader: Callable[[], tuple[inference.LoadedModel, Callable[[], None]]] | None = None,
    ) -> None:
        if model_path is None and loader is None:
            raise ValueError("give model_path or loader")
        if not 0 <= capture_percent <= 100:
            raise ValueError(f"capture_percent must be within 0..100, got {capture_percent}")
        self._loader = loader or (lambda: load_model(model_path))  # type: ignore[arg-type]
        self._cleanup: Callable[[], None] = lambda: None
        self.state = _State(endpoint_name, variant, capture, capture_percent, access_log)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._httpd = _HTTPServer((host, port), handler)
        self._serve_thread: threading.Thread | None = None
        self._load_thread: threading.Thread | None = None
        self._stopped = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> EndpointServer:
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="http-server"
        )
        self._serve_thread.start()
        self._load_thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
        self._load_thread.start()
        return self

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            model, cleanup = self._loader()
        except BaseException as exc:
            LOG.error("model failed to load: %s", exc)
            self.state.load_error = exc
        else:
            self._cleanup = cleanup
            self.state.model = model
            LOG.info(
                "model loaded in %.2f s: classes %s, input %s",
                time.perf_counter() - started,
                model.classes,
                model.input_size,
            )
        finally:
            self.state.loaded.set()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """True once the model is loaded; raises the load error if loading failed."""
        self.state.loaded.wait(timeout)
        if self.state.load_error is not None:
            raise self.state.load_error
        return self.state.model is not None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, let in-flight requests finish, flush and close capture. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.state.stopping = True
        self._httpd.shutdown()  # returns once serve_forever has left its loop
        if not self.state.wait_idle(timeout):
            LOG.warning("requests still running after %.0f s; stopping anyway", timeout)
        self._httpd.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout)
        try:
            if self.state.capture is not None:
                self.state.capture.close()
        finally:
            self._cleanup()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.endpoint_server",
        description="Serve a model artifact over SageMaker's endpoint contract on HOST:PORT.",
    )
    parser.add_argument("--model", required=True, help="model directory or model.tar.gz")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--capture", help="capture to a directory or s3://bucket/prefix")
    parser.add_argument(
        "--capture-percent", type=float, default=100.0, help="share of requests captured"
    )
    parser.add_argument("--capture-flush-seconds", type=float, default=5.0)
    parser.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT_NAME)
    parser.add_argument("--variant", default=DEFAULT_VARIANT)
    parser.add_argument(
        "--threads", type=int, help=f"torch threads per forward pass (${inference.THREADS_ENV}, 1)"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; exit 1 if the model cannot be loaded."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        # --threads, else $SCONES_TORCH_THREADS, else 1 (see inference.configure_threads).
        threads = inference.configure_threads(args.threads)
        if os.environ.get(inference.THREADS_ENV):
            # model_fn re-applies the environment's count on load; keep the flag's.
            os.environ[inference.THREADS_ENV] = str(threads)
        capture = None
        if args.capture:
            capture = CaptureWriter(
                args.capture,
                args.endpoint_name,
                args.variant,
                flush_interval=args.capture_flush_seconds,
            )
    except (ValueError, CaptureError) as exc:
        print(f"endpoint_server: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        return _serve(args, capture, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve(args: argparse.Namespace, capture: CaptureWriter | None, stop: threading.Event) -> int:
    try:
        server = EndpointServer(
            args.model,
            args.host,
            args.port,
            endpoint_name=args.endpoint_name,
            variant=args.variant,
            capture=capture,
            capture_percent=args.capture_percent,
            access_log=args.access_log,
        ).start()
    except (OSError, ValueError) as exc:
        print(f"endpoint_server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        if capture is not None:
            capture.close()
        return 2
    LOG.info(
        "endpoint %s/%s listening on %s (model %s)",
        args.endpoint_name,
        args.variant,
        server.url,
        args.model,
    )
    exit_code = 0
    while not stop.wait(0.2):
        if server.state.loaded.is_set() and server.state.load_error is not None:
            print(f"endpoint_server: {server.state.load_error}", file=sys.stderr)
            exit_code = 1
            break
    LOG.info("stopping: finishing in-flight requests and flushing capture")
    try:
        server.stop()
    except CaptureError as exc:
        print(f"endpoint_server: {exc}", file=sys.stderr)
        exit_code = exit_code or 3
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
