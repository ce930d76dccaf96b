"""A scripted stand-in for the SageMaker runtime API, over real HTTP on loopback.

moto's canned sagemaker-runtime cannot take a binary (image) body, and its answers cannot
be errors; this server speaks the runtime's wire format (``POST /endpoints/<name>/invocations``,
errors as ``x-amzn-ErrorType`` + JSON body) so the real boto3 client, its error parsing and the
handler's error mapping are all exercised. boto3 reaches it via AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], bytes]


GATE_TYPE = "application/vnd.scones.gate+json"
PASSED = {"in_distribution": True, "failed": [], "scores": {}}


def ok(probabilities: list[float], gate: dict[str, Any] | None = None) -> Answer:
    """The endpoint's gate answer (what the classify step asks for): probabilities + verdict."""
    body = {"probabilities": probabilities, "gate": gate or PASSED}
    return 200, {"Content-Type": GATE_TYPE}, json.dumps(body).encode()


def gate_failed(check: str, kind: str, detail: str) -> dict[str, Any]:
    """A failed gate verdict as training.gate.check writes it."""
    return {
        "in_distribution": False,
        "failed": [{"check": check, "kind": kind, "value": 0.0, "detail": detail}],
        "scores": {check: 0.0},
    }


def error(code: str, status: int, message: str, original_status: int | None = None) -> Answer:
    body: dict[str, Any] = {"message": message}
    if original_status is not None:
        body.update(OriginalStatusCode=original_status, OriginalMessage=message)
    return (
        status,
        {"x-amzn-ErrorType": code, "Content-Type": "application/json"},
        json.dumps(body).encode(),
    )


class FakeEndpoint:
    def __init__(self, endpoint_name: str) -> None:
        self.endpoint_name = endpoint_name
        self.answers: deque[Answer] = deque()
        self.default: Answer = ok([0.97, 0.03])
        # Optional: answer by request body (for concurrent tests where queue order is unknown).
        self.responder: Callable[[bytes], Answer] | None = None
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                fake.requests.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "accept": self.headers.get("Accept"),
                        "body": body,
                    }
                )
                if self.path != f"/endpoints/{fake.endpoint_name}/invocations":
                    answer = error("ValidationError", 400, f"Endpoint {self.path} not found.")
                else:
                    with fake.lock:
                        queued = fake.answers.popleft() if fake.answers else None
                    if queued is not None:
                        answer = queued
                    elif fake.responder is not None:
                        answer = fake.responder(body)
                    else:
                        answer = fake.default
                status, headers, payload = answer
                wants_gate = self.headers.get("Accept") == GATE_TYPE
                if headers.get("Content-Type") == GATE_TYPE and not wants_gate:
                    # As the real endpoint: without the opt-in type, the bare probability list.
                    headers = {**headers, "Content-Type": "application/json"}
                    payload = json.dumps(json.loads(payload)["probabilities"]).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
