"""Caches and shortcuts that take moto's Step Functions interpreter from ~250 ms to ~13 ms per
execution, with no change to what it does (profile and figures in docs/performance.md).

1. Parse once: moto re-parses the ASL definition with a pure-Python ANTLR parser at the start of
   every execution (two thirds of a short execution here). The parsed program is a tree of
   evaluation components that keep all per-execution data in the execution's Environment
   (stack, heap: retry counters live there), so one parsed program serves many executions.
2. One client per service: for every Task the interpreter builds a new boto3 client (about
   14 ms each: service model, endpoint resolver, handler copies). Clients are thread-safe for
   calls, so one per (region, service, credentials, target) is reused.

3. Module list once: moto's server dispatcher lists its own package directory (os.listdir +
   isdir of ~200 entries) for every request, while holding the dispatcher lock; under
   concurrent load that serialised all requests (20 ms each). The list cannot change at runtime.
   Likewise the backend for a request's host: the dispatcher matches the host against ~200
   URL patterns, twice per request, under that lock; the answer is kept per host (both the
   list and the patterns are fixed), except for an unknown AWS host, for which moto prints a
   hint each time.
4. JSONPath parsed once: every path evaluation ("$", "$.Payload", "$.error") re-parsed the
   expression with jsonpath-ng, which builds a new PLY lexer and parser each time (a few ms per
   execution); parsed expressions are immutable and ``find`` is pure, so they are memoised.
5. In-process dispatch (server only, ``in_process_dispatch=True``): the interpreter's calls to
   Lambda and SNS are handed to moto's backends in-process by moto's own botocore stubber (the
   mechanism of ``mock_aws``) instead of an HTTP round trip back into the same server. With
   ``own_netloc`` (the server's host:port), the handlers' S3 and SNS calls, which reach this
   server through AWS_ENDPOINT_URL_S3 / _SNS, are served the same way: the stubber sees the
   request addressed to the service's AWS host (the service is read from the SigV4
   credential scope); anything else still goes over HTTP.
6. Backend and request-path costs (local/moto_backend_speedups.py): SQS sends that scanned the
   whole queue, execution lookups that scanned every execution, per-request class
   introspection, URL tables (an S3 module reload) rebuilt for every in-process request, and
   the serializer's attribute-name search repeated for every member of every response.

7. Lambda Invoke straight to the backend (server only, with 5): each Lambda Task's Invoke went
   through a whole botocore call (serialise, sign, event hooks, parse) and moto's API layer
   (stubber URL scan, request normalisation, routing, CRC32 header) around the function call:
   about a fifth of the server's CPU under load. The interpreter's Lambda client hands
   ``invoke(FunctionName=..., Payload=...)`` for an existing function to moto's
   ``LambdaFunction.invoke`` and returns what botocore would have parsed from moto's response
   (status, function error, payload, with moto's 6 MB response limit); any other call, and an
   unknown function (moto's API gives the error), still goes through the client.

8. JSON values copied without deepcopy's dispatch: the interpreter deep-copies every state's
   input, context and result (~90 copies per routed execution); in the modules that do,
   ``copy.deepcopy`` is local/json_copy.py's ``json_deepcopy``, which returns what deepcopy
   returns at about a third of its cost for dicts and lists of JSON scalars.

Local mode installs all of them in its moto server; the state-machine tests run every path
without them and a concurrent mix with them; tests/test_local_moto_speedups.py compares each
part with moto's own answers.

Every part reaches into moto's, jsonpath-ng's or botocore's internals, so :data:`FENCE` names
the versions they were checked on: with any other version installed, :func:`install` applies
none of them and moto runs as shipped (local/version_fence.py).
"""

from __future__ import annotations

import copy
import io
import json
import os
import sys
import threading
import uuid
from functools import lru_cache
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.json_copy import json_deepcopy
from local.version_fence import VersionFence

# The versions every part below was tested on (the lock requirements-dev.txt pins them).
FENCE = VersionFence(
    "local/moto_speedups.py",
    {"moto": "5.2.5", "jsonpath-ng": "1.16.0", "botocore": "1.44.8"},
)

_originals: dict[str, Any] = {}
_lock = threading.Lock()
# Modules that did `from jsonpath_ng[.ext] import parse`.
_JSONPATH_USERS = (
    "moto.stepfunctions.parser.asl.utils.json_path",
    "moto.stepfunctions.parser.asl.component.common.path.result_path",
)
# Modules that did `from ...boto_client import boto_client_for`, by the Task integration
# (the service in arn:aws:states:::SERVICE:...) whose calls they make: every one the routing
# workflow uses (tests/test_local_moto_speedups.py checks the definition against this).
_TASK_MODULE = "moto.stepfunctions.parser.asl.component.state.exec.state_task"
CLIENT_USERS_BY_SERVICE = {
    "lambda": f"{_TASK_MODULE}.lambda_eval_utils",
    "sns": f"{_TASK_MODULE}.service.state_task_service_sns",
    "sqs": f"{_TASK_MODULE}.service.state_task_service_sqs",
}
_CLIENT_USERS = tuple(CLIENT_USERS_BY_SERVICE.values())
# Modules that did `import copy` and deep-copy state data on every execution (part 8).
_ASL = "moto.stepfunctions.parser.asl"
_DEEPCOPY_USERS = (
    f"{_ASL}.eval.states",
    f"{_ASL}.eval.environment",
    f"{_ASL}.eval.event.event_manager",
    f"{_ASL}.component.common.string.string_expression",
    f"{_ASL}.component.common.path.result_path",
    f"{_ASL}.component.state.exec.execute_state",
    f"{_ASL}.component.state.exec.state_task.service.state_task_service",
)


def _copy_module_with_json_deepcopy() -> ModuleType:
    """A stand-in for the ``copy`` module: the same functions, ``deepcopy`` the fast one."""
    stand_in = ModuleType("copy")
    stand_in.__dict__.update(vars(copy))
    stand_in.deepcopy = json_deepcopy  # type: ignore[attr-defined]
    return stand_in


def _signed_scope(headers: Any) -> tuple[str, str] | None:
    """(region, service) from a SigV4 Authorization header, or None."""
    auth = headers.get("Authorization") if headers is not None else None
    if isinstance(auth, bytes):
        auth = auth.decode("latin-1")
    if not auth or "Credential=" not in auth:
        return None
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    return (scope[2], scope[3]) if len(scope) >= 5 else None


def _own_requests_in_process(stubber: Any, own_netloc: str) -> Any:
    from urllib.parse import urlsplit, urlunsplit

    original = stubber.process_request

    def process_request(request: Any) -> Any:
        parts = urlsplit(request.url)
        if parts.netloc == own_netloc:
            scope = _signed_scope(request.headers)
            if scope is not None and scope[1] in ("s3", "sns"):
                region, service = scope
                host = "s3.amazonaws.com" if service == "s3" else f"sns.{region}.amazonaws.com"
                rewritten = copy.copy(request)
                rewritten.url = urlunsplit(("https", host, parts.path, parts.query, ""))
                response = original(rewritten)
                if response is not None:
                    return response
        return original(request)

    return process_request


class DirectLambdaClient:
    """The interpreter's Lambda client, with plain RequestResponse invokes handed to moto's
    Lambda backend in-process (part 7); everything else is the wrapped client's."""

    # What moto's LambdaResponse.invoke allows in a synchronous response.
    MAX_RESPONSE_BYTES = 6_000_000

    def __init__(self, client: Any, region: str) -> None:
        self._client = client
        self._region = region
        self._access_key: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def access_key(self) -> str:
        """The client's access key, read from a URL it presigns (public botocore API: the
        key is the first field of ``X-Amz-Credential``), once: moto's interpreter builds its
        clients with fixed credentials (``boto_client_for`` in
        moto/stepfunctions/parser/asl/utils/boto_client.py)."""
        if self._access_key is None:
            url = self._client.generate_presigned_url("list_functions", ExpiresIn=60)
            credential = parse_qs(urlsplit(url).query)["X-Amz-Credential"][0]
            self._access_key = credential.split("/", 1)[0]
        return self._access_key

    def _backend(self) -> Any:
        from moto.awslambda.models import lambda_backends
        from moto.iam.models import get_account_id_from

        # The account moto's API layer picks (BaseResponse.get_current_account): MOTO_ACCOUNT_ID,
        # else the account that owns the request's access key, else moto's default account.
        account = os.environ.get("MOTO_ACCOUNT_ID") or get_account_id_from(self.access_key())
        return lambda_backends[account][self._region]

    def invoke(self, **params: Any) -> dict[str, Any]:
        from botocore.response import StreamingBody

        if not set(params) <= {"FunctionName", "Payload", "Qualifier"}:
            return self._client.invoke(**params)
        try:
            function = self._backend().get_function(params["FunctionName"], params.get("Qualifier"))
        except Exception:  # moto's not-found and bad-name errors, as its API reports them
            return self._client.invoke(**params)
        body = params.get("Payload") or b""
        headers: dict[str, str] = {"x-amz-invocation-type": "RequestResponse"}
        response_headers: dict[str, str] = {}
        payload = function.invoke(body, headers, response_headers)
        if sys.getsizeof(payload) > self.MAX_RESPONSE_BYTES:
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = json.dumps(
                {
                    "errorMessage": "Response payload size exceeded maximum allowed payload "
                    "size (6291556 bytes).",
                    "errorType": "Function.ResponseSizeTooLarge",
                }
            ).encode("utf-8")
        response_headers.pop("x-amz-log-result", None)  # only with LogType=Tail
        response_headers["content-type"] = "application/json"
        response: dict[str, Any] = {
            "ResponseMetadata": {
                "RequestId": str(uuid.uuid4()),
                "HTTPStatusCode": 200,
                "HTTPHeaders": response_headers,
                "RetryAttempts": 0,
            },
            "StatusCode": 200,
        }
        if "x-amz-function-error" in response_headers:
            response["FunctionError"] = response_headers["x-amz-function-error"]
        response["Payload"] = StreamingBody(io.BytesIO(payload), len(payload))
        return response


def install(
    maxsize: int = 32, in_process_dispatch: bool = False, own_netloc: str | None = None
) -> bool:
    """Install the speedups above (idempotent); 5 and 7 only with ``in_process_dispatch``.

    Returns whether they are installed: False, with nothing changed, when the installed moto,
    jsonpath-ng or botocore is not the version :data:`FENCE` names."""
    if not FENCE.allows():
        return False
    from local import moto_backend_speedups

    with _lock:
        if _originals:
            return True
        _install_parse_once(maxsize)
        _install_client_cache(in_process_dispatch)
        _install_module_globals()
        moto_backend_speedups.install()
        _install_module_list()
        _install_host_lookups()
        if in_process_dispatch:
            _install_in_process_dispatch(own_netloc)
    return True


def _install_parse_once(maxsize: int) -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    _originals["parse"] = AmazonStateLanguageParser.__dict__["parse"]
    parse = _originals["parse"].__func__

    @lru_cache(maxsize=maxsize)
    def cached_parse(definition: str) -> Any:
        return parse(definition)

    AmazonStateLanguageParser.parse = staticmethod(cached_parse)


def _install_client_cache(in_process_dispatch: bool) -> None:
    import importlib

    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.utils import boto_client

    make_client = boto_client.boto_client_for
    clients: dict[tuple, Any] = {}

    def cached_client(region: str, service: str, state_credentials: Any = None) -> Any:
        # The target differs between decorator mode (stubbed) and server mode (port).
        key = (
            region,
            service,
            getattr(state_credentials, "role_arn", None),
            botocore_stubber.enabled,
            moto_server_port(),
        )
        found = clients.get(key)
        if found is None:
            with _lock:
                found = clients.get(key)
                if found is None:
                    found = make_client(region, service, state_credentials)
                    # 7 only where 5 already serves the interpreter in-process.
                    if service == "lambda" and in_process_dispatch:
                        found = DirectLambdaClient(found, region)
                    clients[key] = found
        return found

    for name in _CLIENT_USERS:
        module = importlib.import_module(name)
        _originals[name] = module.boto_client_for
        module.boto_client_for = cached_client


def _install_module_globals() -> None:
    """Memoised JSONPath parsing (part 4) and the fast deep copy (part 8) in the modules that
    imported them."""
    import importlib

    for name in _JSONPATH_USERS:
        module = importlib.import_module(name)
        _originals[f"jsonpath:{name}"] = module.parse
        module.parse = lru_cache(maxsize=1024)(module.parse)

    copy_stand_in = _copy_module_with_json_deepcopy()
    for name in _DEEPCOPY_USERS:
        module = importlib.import_module(name)
        _originals[f"copy:{name}"] = module.copy
        module.copy = copy_stand_in


def _install_module_list() -> None:
    import moto.backends

    modules = tuple(moto.backends.list_of_moto_modules())
    _originals["list_of_moto_modules"] = moto.backends.list_of_moto_modules
    moto.backends.list_of_moto_modules = lambda: modules


# Bounds the host cache: local mode's requests come from a handful of hosts.
_MAX_HOSTS = 4096


def _install_host_lookups() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__dict__["get_backend_for_host"]
    backends: dict[tuple[Any, str | None], Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        key = (self, host)
        if key in backends:
            return backends[key]
        backend = original(self, host)
        unknown_aws_host = backend is None and host is not None and "amazonaws.com" in host
        if not unknown_aws_host and len(backends) < _MAX_HOSTS:
            backends[key] = backend
        return backend

    _originals["backend_for_host"] = original
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def _install_in_process_dispatch(own_netloc: str | None) -> None:
    from moto.core.models import botocore_stubber

    _originals["stubber_enabled"] = botocore_stubber.enabled
    botocore_stubber.enabled = True
    if own_netloc:
        botocore_stubber.process_request = _own_requests_in_process(botocore_stubber, own_netloc)


def installed() -> bool:
    """Whether the speedups are installed now."""
    return bool(_originals)


def uninstall() -> None:
    import importlib

    import moto.backends
    from moto.core.models import botocore_stubber
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    from local import moto_backend_speedups

    with _lock:
        if not _originals:
            return
        AmazonStateLanguageParser.parse = _originals.pop("parse")
        moto.backends.list_of_moto_modules = _originals.pop("list_of_moto_modules")
        DomainDispatcherApplication.get_backend_for_host = _originals.pop("backend_for_host")
        moto_backend_speedups.uninstall()
        if "stubber_enabled" in _originals:
            botocore_stubber.enabled = _originals.pop("stubber_enabled")
            botocore_stubber.__dict__.pop("process_request", None)
        for name in _CLIENT_USERS:
            importlib.import_module(name).boto_client_for = _originals.pop(name)
        for name in _JSONPATH_USERS:
            importlib.import_module(name).parse = _originals.pop(f"jsonpath:{name}")
        for name in _DEEPCOPY_USERS:
            importlib.import_module(name).copy = _originals.pop(f"copy:{name}")
        _originals.clear()
