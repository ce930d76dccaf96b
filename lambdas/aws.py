"""boto3 clients shared by the invocations of one function (one per service, created lazily).

Endpoints come only from the standard ``AWS_ENDPOINT_URL_<SERVICE>`` variables that boto3 reads
itself; this module has no local-mode branch. Clients are made under a lock because the default
boto3 session is not thread-safe and local mode runs invocations on server threads.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[str, Any] = {}

# Few SDK retries: Step Functions owns the retry policy (backoff + jitter) for transient errors,
# and a short read timeout keeps a stuck endpoint from holding the state machine.
_CONFIGS: dict[str, dict[str, Any]] = {
    "sagemaker-runtime": {
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 30,
    },
}


def client(service: str) -> Any:
    """Return the cached client for ``service`` (e.g. "s3", "sns", "sagemaker-runtime")."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session()
            config = Config(**_CONFIGS.get(service, {"retries": {"mode": "standard"}}))
            _clients[service] = session.client(service, config=config)
        return _clients[service]


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints and mocks between cases)."""
    with _lock:
        _clients.clear()
