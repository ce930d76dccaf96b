"""The local AWS: a moto server on loopback with the ASL interpreter on and Lambda in-process.

    python -m local.moto_service --ready-file .scones/moto.json [--code-dir .scones/lambda-code]

Binds 127.0.0.1 on a free port (the OS picks it, so there is no race with other programs),
sets MOTO_PORT to it before serving (moto's Step Functions interpreter calls Lambda at
``http://localhost:$MOTO_PORT``; ThreadedMotoServer does not set it), turns on
``stepfunctions.execute_state_machine``, installs the in-process Lambda adapter
(local/lambda_runtime.py), then writes ``{"pid", "port", "url"}`` to the ready file (atomically)
and serves until SIGTERM/SIGINT, with HTTP/1.1 keep-alive connections (local/keepalive.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def _write_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _profile_threads(path: str) -> None:
    """Profile every thread (cProfile per thread); write merged stats to ``path`` at exit."""
    import atexit
    import cProfile
    import pstats

    # Merged as each thread ends: the server starts several threads per execution, and merging
    # thousands of profiles at exit outlasts `down`'s wait.
    merged: list[pstats.Stats] = []
    merge_lock = threading.Lock()
    original_run = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()
            with merge_lock:
                if merged:
                    merged[0].add(profile)
                else:
                    merged.append(pstats.Stats(profile))

    threading.Thread.run = run  # type: ignore[method-assign]

    def dump() -> None:
        with merge_lock:
            if merged:
                merged[0].dump_stats(path)

    atexit.register(dump)


def backend_app(service: str) -> Any:
    """moto's Flask app for ``service`` (``create_backend_app``), out of Flask's debug mode.

    moto turns debug on for every backend app; in debug mode Flask wraps each request's
    ``files`` in a class it builds per request (flask/debughelpers.py), ~0.1 ms of the server's
    CPU per HTTP request here. Errors still reach the client as moto's own error responses, and
    an unexpected exception as a 500.
    """
    from moto.moto_server.werkzeug_app import create_backend_app

    app = create_backend_app(service)  # type: ignore[arg-type]
    app.debug = False
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.moto_service")
    parser.add_argument("--ready-file", required=True, type=Path)
    parser.add_argument("--code-dir", type=Path, default=Path(".scones") / "lambda-code")
    parser.add_argument(
        "--no-speedups",
        action="store_true",
        default=os.environ.get("SCONES_MOTO_SPEEDUPS") == "0",
        help="run moto's interpreter without local/moto_speedups.py ($SCONES_MOTO_SPEEDUPS=0)",
    )
    parser.add_argument(
        "--stats-file", type=Path, help="on SIGUSR1, write handler durations (ms) here as JSON"
    )
    args = parser.parse_args(argv)

    # Credentials and region for moto's own clients and for handlers running in this process.
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)

    from moto.core.config import default_user_config
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from werkzeug.serving import make_server

    from local import lambda_runtime, moto_speedups
    from local.keepalive import KeepAliveRequestHandler

    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    lambda_runtime.install(args.code_dir.resolve())
    # Per-request access lines and moto's error report for every failed execution (expected
    # outcomes here, kept in the execution history) cost more than they tell; warnings stay.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)

    profile_path = os.environ.get("SCONES_PROFILE")
    if profile_path:  # benchmarks: where the server's time goes, all threads
        _profile_threads(profile_path)

    app = DomainDispatcherApplication(backend_app)
    server = make_server(HOST, 0, app, threaded=True, request_handler=KeepAliveRequestHandler)
    port = int(server.server_address[1])
    os.environ["MOTO_PORT"] = str(port)
    if not args.no_speedups:
        moto_speedups.install(in_process_dispatch=True, own_netloc=f"{HOST}:{port}")

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    if args.stats_file:

        def dump_stats(*_: object) -> None:
            _write_atomic(args.stats_file, lambda_runtime.stats_snapshot())

        signal.signal(signal.SIGUSR1, dump_stats)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _write_atomic(
        args.ready_file, {"pid": os.getpid(), "port": port, "url": f"http://{HOST}:{port}"}
    )
    print(f"moto listening on http://{HOST}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        lambda_runtime.uninstall()
        moto_speedups.uninstall()
    return 0


if __name__ == "__main__":
    sys.exit(main())
