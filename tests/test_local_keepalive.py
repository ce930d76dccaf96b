"""local/keepalive.py: moto's server keeps HTTP/1.1 connections open without mixing requests."""

from __future__ import annotations

import http.client
import io
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.serving import make_server

from local.keepalive import BoundedBody, KeepAliveRequestHandler


def _app(environ: dict[str, Any], start_response: Any) -> Any:
    """/echo returns the body it read; /ignore reads nothing; /stream has no Content-Length."""
    path = environ["PATH_INFO"]
    if path == "/echo":
        if environ.get("wsgi.input_terminated"):  # a chunked body, de-chunked by werkzeug
            body = environ["wsgi.input"].read()
        else:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"part-1,", b"part-2"])
    start_response("200 OK", [("Content-Length", "7")])
    return [b"ignored"]


class _Server:
    def __init__(self, app: Any) -> None:
        self.httpd = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=KeepAliveRequestHandler
        )
        self.connections = 0
        accept = self.httpd.process_request

        def counted(request: Any, address: Any) -> None:
            self.connections += 1
            accept(request, address)

        self.httpd.process_request = counted  # type: ignore[method-assign]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server(_app)
    yield s
    s.close()


def _request(conn: http.client.HTTPConnection, method: str, path: str, **kw: Any) -> tuple:
    conn.request(method, path, **kw)
    response = conn.getresponse()
    return response.status, response.read(), response.getheader("Connection")


def test_requests_share_one_connection_and_unread_bodies_are_discarded(server: _Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    big = b"x" * 300_000  # more than one socket read; the app reads none of it
    assert _request(conn, "POST", "/echo", body=b"first") == (200, b"first", None)
    assert _request(conn, "POST", "/ignore", body=big) == (200, b"ignored", None)
    # Had the rest of the ignored body been left on the socket, this would be parsed from it.
    assert _request(conn, "POST", "/echo", body=b"second") == (200, b"second", None)
    assert _request(conn, "GET", "/stream") == (200, b"part-1,part-2", None)  # chunked reply
    assert _request(conn, "GET", "/echo") == (200, b"", None)
    assert server.connections == 1
    conn.close()


def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send one raw request and read until the server closes (a timeout if it keeps it open)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.mark.parametrize(
    "request_head",
    [
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    ],
    ids=["client-asks-to-close", "chunked-request-body", "http-1.0"],
)
def test_connection_closes_where_the_body_is_not_delimited_or_close_is_asked(
    server: _Server, request_head: bytes
) -> None:
    received = _raw_exchange(server.port, request_head)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
    assert body == b"hello"


def test_moto_over_kept_alive_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 against moto's app through the handler: S3 with an underscore metadata key (moto's
    own handler behaviour), a body large enough for Expect: 100-continue, and Step Functions,
    over the connections botocore keeps."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    server = _Server(DomainDispatcherApplication(create_backend_app))
    try:
        url = f"http://127.0.0.1:{server.port}"
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        sfn = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket="keepalive")
        body = bytes(range(256)) * 8192  # 2 MiB
        s3.put_object(Bucket="keepalive", Key="k", Body=body, Metadata={"driver_id": "d-1"})
        got = s3.get_object(Bucket="keepalive", Key="k")
        assert got["Body"].read() == body and got["Metadata"] == {"driver_id": "d-1"}
        for _ in range(5):
            assert sfn.list_state_machines()["stateMachines"] == []
        assert server.connections == 2  # one per client, not one per call
    finally:
        server.close()


@given(
    body=st.binary(max_size=2000),
    following=st.binary(min_size=1, max_size=50),
    sizes=st.lists(st.integers(-1, 700), min_size=1, max_size=30),
    lines=st.booleans(),
)
def test_bounded_body_never_reads_past_the_body(
    body: bytes, following: bytes, sizes: list[int], lines: bool
) -> None:
    """Whatever mix of reads the application makes, the next request's bytes stay unread."""
    stream = io.BufferedReader(io.BytesIO(body + following))
    bounded = BoundedBody(stream, len(body))
    read = bounded.readline if lines else bounded.read
    got = b"".join(read(size) for size in sizes)
    bounded.discard_rest()
    assert body.startswith(got) and bounded.remaining == 0
    assert stream.read() == following


def test_bounded_body_stops_when_the_client_goes_away() -> None:
    bounded = BoundedBody(io.BufferedReader(io.BytesIO(b"short")), 100)
    assert bounded.read() == b"short"
    bounded.discard_rest()  # returns: no more bytes will come
    assert bounded.remaining == 0 and bounded.read() == b""
