"""local.endpoint_server and local.capture: SageMaker's container contract over real HTTP.

Covers every content type and error code with its JSON body, /ping before and after loading,
the runtime API path through a real boto3 sagemaker-runtime client, capture files parsed back
from a directory and from S3 (moto server via AWS_ENDPOINT_URL_S3), and SIGTERM shutdown.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from serving_support import CLASSES, encode, make_artifact, random_rgb

import local.capture as capture_module
from lambdas.capture_format import capture_key, parse_capture_lines
from local.capture import CaptureError, CaptureWriter, parse_target
from local.endpoint_server import EndpointServer, load_model, main, prepare_model_dir
from training import inference
from training.errors import ModelArtifactError

ENDPOINT = "scones-test"
VARIANT = "Primary"
CAPTURE_NAME = re.compile(
    rf"^{ENDPOINT}/{VARIANT}/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/\d{{2}}-\d{{2}}-\d{{3}}-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl$"
)
PNG = encode(random_rgb(seed=11))
JPEG = encode(random_rgb(seed=12), "JPEG", quality=90)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_artifact(tmp_path_factory.mktemp("served") / "model")


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capture")


@pytest.fixture(scope="module")
def server(artifact: Path, capture_dir: Path) -> Iterator[EndpointServer]:
    writer = CaptureWriter(str(capture_dir), ENDPOINT, VARIANT, flush_interval=0.2)
    endpoint = EndpointServer(
        artifact, "127.0.0.1", 0, endpoint_name=ENDPOINT, variant=VARIANT, capture=writer
    ).start()
    assert endpoint.wait_loaded(60)
    yield endpoint
    endpoint.stop()


@pytest.fixture
def runtime(server: EndpointServer, monkeypatch: pytest.MonkeyPatch):
    """A real boto3 sagemaker-runtime client pointed at the server the standard way."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return boto3.client(
        "sagemaker-runtime", config=Config(retries={"max_attempts": 1, "mode": "standard"})
    )


def request(
    server: EndpointServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def assert_error(status: int, headers: dict, body: bytes, code: int, name: str) -> str:
    assert status == code
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == {"error", "message"}
    assert payload["error"] == name
    assert payload["message"]
    return payload["message"]


# --- container contract --------------------------------------------------------------------


def test_ping_is_healthy_once_loaded(server: EndpointServer) -> None:
    status, headers, body = request(server, "GET", "/ping")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "Healthy"}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("image/png", PNG), ("image/jpeg", JPEG), ("application/x-image", PNG)],
)
def test_every_content_type_answers_probabilities(
    server: EndpointServer, content_type: str, body: bytes
) -> None:
    status, headers, payload = request(
        server, "POST", "/invocations", body, {"Content-Type": content_type}
    )
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["x-amzn-invoked-production-variant"] == VARIANT
    probabilities = json.loads(payload)
    assert len(probabilities) == len(CLASSES)
    assert all(0 <= p <= 1 for p in probabilities)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-9)


def test_answer_matches_the_hooks_in_process(server: EndpointServer, artifact: Path) -> None:
    model = inference.model_fn(str(artifact))
    expected, _ = inference.output_fn(
        inference.predict_fn(inference.input_fn(PNG, "image/png"), model), "application/json"
    )
    _, _, payload = request(server, "POST", "/invocations", PNG, {"Content-Type": "image/png"})
    assert json.loads(payload) == pytest.approx(json.loads(expected), abs=1e-9)


def test_large_photo_is_resized(server: EndpointServer) -> None:
    photo = encode(random_rgb(600, 800, seed=5), "JPEG", quality=85)
    status, _, payload = request(
        server, "POST", "/invocations", photo, {"Content-Type": "image/jpeg"}
    )
    assert status == 200
    assert sum(json.loads(payload)) == pytest.approx(1.0)


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "image/gif"])
def test_unsupported_content_type_is_415(server: EndpointServer, content_type: str) -> None:
    status, headers, body = request(
        server, "POST", "/invocations", PNG, {"Content-Type": content_type}
    )
    message = assert_error(status, headers, body, 415, "UnsupportedContentType")
    assert content_type in message


def test_missing_content_type_is_415(server: EndpointServer) -> None:
    status, headers, body = request(server, "POST", "/invocations", PNG, {"Content-Type": ""})
    assert_error(status, headers, body, 415, "UnsupportedContentType")


@pytest.mark.parametrize(
    "body", [b"not an image", PNG[: len(PNG) // 2], b""], ids=["text", "truncated", "empty"]
)
def test_undecodable_body_is_400(server: EndpointServer, body: bytes) -> None:
    status, headers, payload = request(
        server, "POST", "/invocations", body, {"Content-Type": "image/png"}
    )
    assert_error(status, headers, payload, 400, "InvalidImage")


def test_body_over_6_mb_is_413_and_the_connection_stays_usable(server: EndpointServer) -> None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        big = b"\0" * (inference.MAX_PAYLOAD_BYTES + 1)
        conn.request("POST", "/invocations", body=big, headers={"Content-Type": "image/png"})
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        message = assert_error(response.status, headers, response.read(), 413, "PayloadTooLarge")
        assert str(inference.MAX_PAYLOAD_BYTES) in message
        conn.request("POST", "/invocations", body=PNG, headers={"Content-Type": "image/png"})
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_chunked_body_over_the_limit_is_413(server: EndpointServer) -> None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    chunk = b"\0" * (1024 * 1024)
    try:
        conn.request(
            "POST",
            "/invocations",
            body=iter([chunk] * 7),
            headers={"Content-Type": "image/png"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        assert_error(response.status, headers, response.read(), 413, "PayloadTooLarge")
    finally:
        conn.close()


def test_chunked_image_is_accepted(server: EndpointServer) -> None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(
            "POST",
            "/invocations",
            body=iter([PNG[:100], PNG[100:]]),
            headers={"Content-Type": "image/png"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        assert response.status == 200
        assert sum(json.loads(response.read())) == pytest.approx(1.0)
    finally:
        conn.close()


def test_unacceptable_accept_is_406(server: EndpointServer) -> None:
    status, headers, body = request(
        server, "POST", "/invocations", PNG, {"Content-Type": "image/png", "Accept": "text/csv"}
    )
    assert_error(status, headers, body, 406, "NotAcceptable")


def test_missing_content_length_is_411(server: EndpointServer) -> None:
    host, port = server.address
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n\r\n")
        reply = sock.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 411")
    assert json.loads(reply.split("\r\n\r\n", 1)[1])["error"] == "LengthRequired"


def test_unknown_route_and_method(server: EndpointServer) -> None:
    status, headers, body = request(server, "GET", "/nope")
    assert_error(status, headers, body, 404, "NotFound")
    status, headers, body = request(server, "PUT", "/invocations", b"x")
    assert_error(status, headers, body, 405, "MethodNotAllowed")


def test_concurrent_clients_all_get_answers(server: EndpointServer) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        host, port = server.address
        conn = http.client.HTTPConnection(host, port, timeout=30)
        for _ in range(10):
            conn.request("POST", "/invocations", body=PNG, headers={"Content-Type": "image/png"})
            response = conn.getresponse()
            response.read()
            with lock:
                results.append(response.status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 60


# --- runtime API path through boto3 -----------------------------------------------------------


def test_boto3_invoke_endpoint(runtime) -> None:
    response = runtime.invoke_endpoint(
        EndpointName=ENDPOINT, ContentType="image/png", Accept="application/json", Body=PNG
    )
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == VARIANT
    probabilities = json.loads(response["Body"].read())
    assert sum(probabilities) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "name"),
    [
        ("text/plain", PNG, 415, "UnsupportedContentType"),
        ("image/png", b"garbage", 400, "InvalidImage"),
        ("image/png", b"\0" * (inference.MAX_PAYLOAD_BYTES + 1), 413, "PayloadTooLarge"),
    ],
)
def test_boto3_sees_model_errors_as_sagemaker_reports_them(
    runtime, content_type: str, body: bytes, status: int, name: str
) -> None:
    with pytest.raises(ClientError) as info:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType=content_type, Body=body)
    error = info.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == status
    assert json.loads(error["OriginalMessage"])["error"] == name
    assert f"({status})" in error["Error"]["Message"]


def test_boto3_unknown_endpoint_is_validation_error(runtime) -> None:
    with pytest.raises(ClientError) as info:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="image/png", Body=PNG)
    error = info.value.response
    assert error["Error"]["Code"] == "ValidationError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "no-such-endpoint" in error["Error"]["Message"]


def test_boto3_unknown_target_variant_is_validation_error(runtime) -> None:
    with pytest.raises(ClientError) as info:
        runtime.invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="image/png", Body=PNG, TargetVariant="Other"
        )
    assert info.value.response["Error"]["Code"] == "ValidationError"


# --- loading -----------------------------------------------------------------------------------


def test_ping_and_invocations_before_and_after_load(
    artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def slow_loader():
        release.wait(30)
        return load_model(artifact)

    endpoint = EndpointServer(
        None, "127.0.0.1", 0, endpoint_name=ENDPOINT, variant=VARIANT, loader=slow_loader
    ).start()
    try:
        status, headers, body = request(endpoint, "GET", "/ping")
        assert_error(status, headers, body, 503, "ModelNotReady")
        status, headers, body = request(
            endpoint, "POST", "/invocations", PNG, {"Content-Type": "image/png"}
        )
        assert_error(status, headers, body, 503, "ModelNotReady")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", endpoint.url)
        client = boto3.client(
            "sagemaker-runtime",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint(EndpointName=ENDPOINT, ContentType="image/png", Body=PNG)
        assert info.value.response["Error"]["Code"] == "ModelNotReadyException"
        release.set()
        assert endpoint.wait_loaded(60)
        assert request(endpoint, "GET", "/ping")[0] == 200
        status, _, body = request(
            endpoint, "POST", "/invocations", PNG, {"Content-Type": "image/png"}
        )
        assert status == 200 and sum(json.loads(body)) == pytest.approx(1.0)
    finally:
        release.set()
        endpoint.stop()


def test_failed_load_is_reported(tmp_path: Path) -> None:
    endpoint = EndpointServer(tmp_path / "missing", "127.0.0.1", 0).start()
    try:
        with pytest.raises(ModelArtifactError, match="does not exist"):
            endpoint.wait_loaded(30)
        status, headers, body = request(endpoint, "GET", "/ping")
        assert_error(status, headers, body, 500, "ModelLoadFailed")
        # Invocations answer as SageMaker's container does for a broken artifact
        # (training/sagemaker_entry.py, checked against the real stack in
        # tests/test_sagemaker_serving_parity.py), not "still loading".
        status, headers, body = request(
            endpoint, "POST", "/invocations", PNG, {"Content-Type": "image/png"}
        )
        assert_error(status, headers, body, 500, "ModelLoadFailed")
    finally:
        endpoint.stop()


def test_model_tarball_is_served(artifact: Path, tmp_path: Path) -> None:
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for path in sorted(artifact.iterdir()):
            archive.add(path, arcname=path.name)
    model_dir, cleanup = prepare_model_dir(tarball)
    assert (model_dir / "model_meta.json").is_file()
    cleanup()
    assert not model_dir.exists()
    endpoint = EndpointServer(tarball, "127.0.0.1", 0).start()
    try:
        assert endpoint.wait_loaded(60)
        status, _, body = request(
            endpoint, "POST", "/invocations", PNG, {"Content-Type": "image/png"}
        )
        assert status == 200 and len(json.loads(body)) == len(CLASSES)
    finally:
        endpoint.stop()


def test_corrupt_tarball_is_a_named_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ModelArtifactError, match="not a readable model tarball"):
        prepare_model_dir(bad)


# --- capture -------------------------------------------------------------------------------------


def _records(root: Path) -> list[tuple[str, dict]]:
    out = []
    for path in sorted(root.rglob("*.jsonl")):
        relative = path.relative_to(root).as_posix()
        out.extend((relative, record) for record in parse_capture_lines(path.read_text()))
    return out


def test_capture_files_in_sagemaker_format(server: EndpointServer, capture_dir: Path) -> None:
    marker = encode(random_rgb(seed=99))
    status, _, answer = request(
        server, "POST", "/invocations", marker, {"Content-Type": "image/png"}
    )
    assert status == 200
    request(server, "POST", "/invocations", b"garbage", {"Content-Type": "image/png"})
    server.state.capture.flush()
    records = _records(capture_dir)
    assert records
    assert not list(capture_dir.rglob(".capture-*"))  # no temp files left behind
    for relative, record in records:
        assert CAPTURE_NAME.match(relative), relative
        assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
        assert record["eventVersion"] == "0"
        assert set(record["eventMetadata"]) == {"eventId", "inferenceTime"}
        when = dt.datetime.strptime(record["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
        assert relative.split("/")[2:6] == [f"{when:%Y}", f"{when:%m}", f"{when:%d}", f"{when:%H}"]
        inp = record["captureData"]["endpointInput"]
        out = record["captureData"]["endpointOutput"]
        assert (inp["mode"], inp["encoding"]) == ("INPUT", "BASE64")
        assert (out["mode"], out["encoding"], out["observedContentType"]) == (
            "OUTPUT",
            "JSON",
            "application/json",
        )
        assert sum(json.loads(out["data"])) == pytest.approx(1.0)
        base64.b64decode(inp["data"], validate=True)
    mine = [
        r
        for _, r in records
        if base64.b64decode(r["captureData"]["endpointInput"]["data"]) == marker
    ]
    assert len(mine) == 1
    assert mine[0]["captureData"]["endpointInput"]["observedContentType"] == "image/png"
    assert mine[0]["captureData"]["endpointOutput"]["data"] == answer.decode()
    # the failed request (400) is not captured
    assert all(
        base64.b64decode(r["captureData"]["endpointInput"]["data"]) != b"garbage"
        for _, r in records
    )


def test_capture_percent_zero_captures_nothing(artifact: Path, tmp_path: Path) -> None:
    writer = CaptureWriter(str(tmp_path), ENDPOINT, VARIANT)
    endpoint = EndpointServer(artifact, "127.0.0.1", 0, capture=writer, capture_percent=0).start()
    try:
        assert endpoint.wait_loaded(60)
        assert (
            request(endpoint, "POST", "/invocations", PNG, {"Content-Type": "image/png"})[0] == 200
        )
    finally:
        endpoint.stop()
    assert _records(tmp_path) == []


def test_capture_writer_batches_by_count_and_splits_hours(tmp_path: Path) -> None:
    writer = CaptureWriter(str(tmp_path), "ep", "v", flush_interval=60, max_records=3)
    base = dt.datetime(2026, 1, 2, 10, 59, 58, 123000, tzinfo=dt.UTC)
    for i in range(3):
        writer.record(b"img%d" % i, "image/png", "[0.5, 0.5]", when=base + dt.timedelta(seconds=i))
    deadline = time.monotonic() + 10
    while len(writer.written) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # the count threshold triggers a write without flush()/close()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert [f.split("/")[5] for f in files] == ["10", "11"]
    assert files[0].split("/")[6].startswith("59-58-123-")
    writer.close()
    assert len(_records(tmp_path)) == 3


def test_capture_writer_flushes_on_its_interval(tmp_path: Path) -> None:
    writer = CaptureWriter(str(tmp_path), "ep", "v", flush_interval=0.1)
    writer.record(b"x", "image/jpeg", "[1.0, 0.0]")
    deadline = time.monotonic() + 10
    while not writer.written and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_records(tmp_path)) == 1
    writer.close()


def test_capture_close_writes_everything(tmp_path: Path) -> None:
    writer = CaptureWriter(str(tmp_path), "ep", "v", flush_interval=3600)
    for i in range(25):
        writer.record(b"%d" % i, "image/png", "[0.1, 0.9]", event_id=f"id-{i}")
    writer.close()
    ids = sorted(r["eventMetadata"]["eventId"] for _, r in _records(tmp_path))
    assert ids == sorted(f"id-{i}" for i in range(25))
    with pytest.raises(CaptureError, match="closed"):
        writer.record(b"late", "image/png", "[0.5, 0.5]")


class _FlakyS3:
    """Fails the first `failures` puts, then stores objects in memory."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.objects: dict[str, bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("S3 unreachable")
        self.objects[f"{Bucket}/{Key}"] = Body


def test_capture_keeps_records_when_a_write_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_module, "_RETRY_BASE_SECONDS", 0.01)
    fake = _FlakyS3(failures=2)
    writer = CaptureWriter(
        "s3://bucket/prefix", "ep", "v", flush_interval=0.05, s3_client_factory=lambda: fake
    )
    writer.record(b"a", "image/png", "[0.5, 0.5]")
    writer.close()
    assert len(fake.objects) == 1
    (key,) = fake.objects
    assert key.startswith("bucket/prefix/ep/v/")
    assert len(parse_capture_lines(fake.objects[key].decode())) == 1


def test_capture_close_raises_when_records_cannot_be_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(capture_module, "_RETRY_BASE_SECONDS", 0.01)
    writer = CaptureWriter(
        "s3://bucket", "ep", "v", flush_interval=60, s3_client_factory=lambda: _FlakyS3(10**6)
    )
    writer.record(b"a", "image/png", "[0.5, 0.5]")
    with pytest.raises(CaptureError, match="1 captured records could not be written"):
        writer.close()


@pytest.mark.parametrize("target", ["s3://", "s3:///prefix", ""])
def test_bad_capture_targets(target: str) -> None:
    with pytest.raises(CaptureError):
        parse_target(target)


def test_capture_path_layout() -> None:
    when = dt.datetime(2025, 10, 4, 8, 44, 11, 7000, tzinfo=dt.UTC)
    assert (
        capture_key("", "ep", "AllTraffic", when, "u")
        == "ep/AllTraffic/2025/10/04/08/44-11-007-u.jsonl"
    )


def test_capture_to_s3_through_moto_server(artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{host}:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="capture-bucket")
        writer = CaptureWriter("s3://capture-bucket/datacapture", ENDPOINT, VARIANT)
        endpoint = EndpointServer(
            artifact, "127.0.0.1", 0, endpoint_name=ENDPOINT, variant=VARIANT, capture=writer
        ).start()
        try:
            assert endpoint.wait_loaded(60)
            for body in (PNG, JPEG):
                ctype = "image/png" if body is PNG else "image/jpeg"
                assert (
                    request(endpoint, "POST", "/invocations", body, {"Content-Type": ctype})[0]
                    == 200
                )
        finally:
            endpoint.stop()  # flushes capture
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="capture-bucket")["Contents"]]
        assert keys and all(k.startswith("datacapture/") for k in keys)
        assert all(CAPTURE_NAME.match(k.removeprefix("datacapture/")) for k in keys)
        records = [
            record
            for key in keys
            for record in parse_capture_lines(
                s3.get_object(Bucket="capture-bucket", Key=key)["Body"].read().decode()
            )
        ]
        sent = {base64.b64decode(r["captureData"]["endpointInput"]["data"]) for r in records}
        assert sent == {PNG, JPEG}
        types = {r["captureData"]["endpointInput"]["observedContentType"] for r in records}
        assert types == {"image/png", "image/jpeg"}
    finally:
        moto.stop()


# --- command line -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def keep_torch_threads() -> Iterator[None]:
    """main() sets the process's torch thread count; give other tests theirs back."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("keep_torch_threads")
def test_cli_reports_a_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["--model", str(tmp_path / "nothing"), "--port", str(_free_port())])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.usefixtures("keep_torch_threads")
def test_cli_rejects_a_bad_capture_target(artifact: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["--model", str(artifact), "--port", "0", "--capture", "s3://"])
    assert code == 2
    assert "bucket" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_serves_and_flushes_capture_on_sigterm(artifact: Path, tmp_path: Path) -> None:
    """The documented command; SIGTERM lets in-flight work finish and writes the capture."""
    port = _free_port()
    capture = tmp_path / "capture"
    repo_root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [
            sys.executable, "-m", "local.endpoint_server",
            "--model", str(artifact), "--host", "127.0.0.1", "--port", str(port),
            "--capture", str(capture), "--capture-flush-seconds", "3600",
            "--endpoint-name", ENDPOINT, "--variant", VARIANT,
        ],
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(5):
            conn.request("POST", "/invocations", body=PNG, headers={"Content-Type": "image/png"})
            assert conn.getresponse().read()
        conn.close()
        assert not list(capture.rglob("*.jsonl"))  # interval is an hour: nothing written yet
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(_records(capture)) == 5
