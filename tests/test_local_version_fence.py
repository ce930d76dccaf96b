"""local/version_fence.py: local mode's patches of moto, werkzeug, jsonpath-ng and botocore
internals apply only on the versions they were tested on; on any other version local mode runs
the stock libraries (slower, same answers)."""

from __future__ import annotations

import http.client
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from local import keepalive, moto_backend_speedups, moto_speedups, version_fence
from local.version_fence import VersionFence


def _pins(path: Path) -> dict[str, str]:
    """``{distribution: version}`` for every ``name[extras]==version`` line."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s#]+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(3)
    return pins


@pytest.mark.parametrize("fence", [moto_speedups.FENCE, keepalive.FENCE], ids=lambda f: f.name)
def test_each_fence_names_the_versions_requirements_pin(repo_root: Path, fence: Any) -> None:
    """A bump in the lock (requirements-dev.txt) without re-testing the patches (and moving the
    fence) fails here, rather than silently turning the speedups off or, worse, patching unknown
    code."""
    pins = _pins(repo_root / "requirements-dev.txt")
    for distribution, version in fence.tested_on.items():
        assert pins.get(distribution) == version, f"{distribution} pinned {pins.get(distribution)}"
    # A venv built from the requirements (as make venv and CI build it) satisfies the fence.
    assert fence.mismatches() == {}


def _installed_as(monkeypatch: pytest.MonkeyPatch, **versions: str | None) -> None:
    """Pretend these distributions are installed at these versions (None: not installed)."""
    real = version_fence.installed_version
    wanted = {name.replace("_", "-"): v for name, v in versions.items()}
    monkeypatch.setattr(
        version_fence,
        "installed_version",
        lambda dist: wanted[dist] if dist in wanted else real(dist),
    )


def test_fence_reports_other_and_missing_versions_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _installed_as(monkeypatch, moto="5.3.0", jsonpath_ng=None)
    fence = VersionFence("a patch", {"moto": "5.2.5", "jsonpath-ng": "1.16.0"})
    assert fence.mismatches() == {"moto": "5.3.0", "jsonpath-ng": None}
    with caplog.at_level(logging.WARNING, logger="local.version_fence"):
        assert fence.allows() is False
        assert fence.allows() is False
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "a patch is not applied" in message
    assert "moto 5.3.0" in message and "jsonpath-ng absent" in message


def _moto_as_shipped() -> dict[str, Any]:
    """The moto, jsonpath-ng and botocore-stubber objects the speedups replace."""
    import importlib

    import moto.backends
    import moto.core.responses as responses
    import moto.core.utils as utils
    from moto.core import serialize
    from moto.core.base_backend import BaseBackend
    from moto.core.models import botocore_stubber
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs.models import Queue, SQSBackend
    from moto.stepfunctions.models import StateMachine, StepFunctionBackend
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    found = {
        "parse": AmazonStateLanguageParser.__dict__["parse"],
        "modules": moto.backends.list_of_moto_modules,
        "stubber_enabled": botocore_stubber.enabled,
        "stubber_process": botocore_stubber.__dict__.get("process_request"),
        "sqs": (Queue.__dict__["attributes"], SQSBackend.send_message, Queue.add_message),
        "executions": (
            StateMachine._handle_name_input_idempotency,
            StepFunctionBackend.describe_execution,
        ),
        "method_names": responses.method_names_from_class,
        "urls": BaseBackend.__dict__["urls"],
        "camelcase": utils.camelcase_to_underscores,
        "attribute_names": tuple(
            cls.__dict__["get_possible_keys"]
            for cls in (serialize.AttributePicker, serialize.XFormedAttributePicker)
        ),
        "backend_for_host": DomainDispatcherApplication.__dict__["get_backend_for_host"],
    }
    for name in moto_speedups._CLIENT_USERS:
        found[name] = importlib.import_module(name).boto_client_for
    for name in moto_speedups._JSONPATH_USERS:
        found[f"jsonpath:{name}"] = importlib.import_module(name).parse
    for name in moto_speedups._DEEPCOPY_USERS:
        found[f"copy:{name}"] = importlib.import_module(name).copy
    return found


@pytest.mark.parametrize(
    "installed",
    [{"moto": "5.3.0"}, {"moto": "5.2.4"}, {"jsonpath_ng": "1.17.0"}, {"botocore": "1.45.0"}],
    ids=["newer-moto", "older-moto", "other-jsonpath-ng", "other-botocore"],
)
def test_speedups_are_not_installed_on_other_versions(
    monkeypatch: pytest.MonkeyPatch, installed: dict[str, str]
) -> None:
    _installed_as(monkeypatch, **installed)
    fence = moto_speedups.FENCE
    monkeypatch.setattr(moto_speedups, "FENCE", VersionFence(fence.name, fence.tested_on))
    before = _moto_as_shipped()
    assert moto_speedups.install(in_process_dispatch=True, own_netloc="127.0.0.1:1") is False
    assert moto_speedups.installed() is False
    assert moto_backend_speedups._originals == {}
    assert _moto_as_shipped() == before  # moto exactly as shipped: every object the same
    moto_speedups.uninstall()  # nothing to undo
    assert _moto_as_shipped() == before


def test_speedups_install_on_the_tested_versions() -> None:
    before = _moto_as_shipped()
    assert moto_speedups.install() is True
    try:
        assert moto_speedups.installed() is True
        now = _moto_as_shipped()
        assert all(now[key] is not before[key] for key in ("parse", "backend_for_host"))
        assert now["attribute_names"] != before["attribute_names"]
    finally:
        moto_speedups.uninstall()
    assert _moto_as_shipped() == before


def _app(environ: dict[str, Any], start_response: Any) -> Any:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def counting_server() -> Iterator[tuple[Any, list[int]]]:
    httpd = make_server(
        "127.0.0.1", 0, _app, threaded=True, request_handler=keepalive.KeepAliveRequestHandler
    )
    connections: list[int] = []
    accept = httpd.process_request

    def counted(request: Any, address: Any) -> None:
        connections.append(1)
        accept(request, address)

    httpd.process_request = counted  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, connections
    httpd.shutdown()
    httpd.server_close()


def _three_requests(port: int) -> list[tuple[int, bytes, str | None]]:
    """Three POSTs through one client connection (http.client reconnects if it is closed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answers = []
    for body in (b"one", b"two", b"three"):
        conn.request("POST", "/echo", body=body)
        response = conn.getresponse()
        answers.append((response.status, response.read(), response.getheader("Connection")))
    conn.close()
    return answers


def test_keepalive_falls_back_to_closing_every_connection_on_other_versions(
    monkeypatch: pytest.MonkeyPatch, counting_server: tuple[Any, list[int]]
) -> None:
    httpd, connections = counting_server
    port = httpd.server_address[1]
    assert _three_requests(port) == [
        (200, b"one", None),
        (200, b"two", None),
        (200, b"three", None),
    ]
    assert len(connections) == 1  # tested versions: one kept-alive connection

    _installed_as(monkeypatch, werkzeug="3.2.0")
    monkeypatch.setattr(
        keepalive, "FENCE", VersionFence(keepalive.FENCE.name, keepalive.FENCE.tested_on)
    )
    connections.clear()
    answers = _three_requests(port)
    # werkzeug's stock behaviour: the same answers, each on its own connection.
    assert answers == [(200, b"one", "close"), (200, b"two", "close"), (200, b"three", "close")]
    assert len(connections) == 3
