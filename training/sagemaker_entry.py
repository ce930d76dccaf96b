"""The artifact's `code/inference.py`: the module SageMaker's PyTorch inference image imports.

training.train copies this file to code/inference.py. It defines `model_fn` and `transform_fn`
and on purpose none of input_fn/predict_fn/output_fn: sagemaker-inference's Transformer calls
`transform_fn(model, body, content_type, accept, context)` only for a module without them
(sagemaker_inference/transformer.py, `_validate_user_module_and_set_functions`, in the copy
sagemaker-pytorch-inference 2.0.25 ships, the version in the PyTorch 2.6 inference DLC:
aws/deep-learning-containers pytorch/inference/buildspec-2-6-sm.yml `tool_kit_version`).
On the input_fn path the toolkit answers every raised error as "MESSAGE\\nTRACEBACK"
(`Transformer.handle_error`), which is not JSON and shows the container's file layout; here the
status is set on TorchServe's context and the body is the pure JSON training.inference.respond
gives, the same answer local.endpoint_server sends.
"""

from __future__ import annotations

import functools
import http
import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Any

from training import inference
from training.errors import ModelArtifactError, ServingError

LOG = logging.getLogger(__name__)

# The toolkit version whose Transformer.transform is wrapped below (see _answer_text_types).
PATCHED_TOOLKIT_VERSION = "2.0.25"



@dataclass(frozen=True)
class BrokenArtifact:
    """What model_fn returns when the artifact cannot be loaded: the error, kept to answer with."""

    error: ModelArtifactError


def model_fn(model_dir: str) -> inference.LoadedModel | BrokenArtifact:
    """training.inference.model_fn; a ModelArtifactError is kept instead of raised.

    Raised, it makes every TorchServe worker crash-loop while /ping keeps answering 200 Healthy
    and each invocation hangs until the client's timeout. Kept, each invocation answers 500
    {"error": "ModelLoadFailed", ...} at once, as local.endpoint_server does, so the endpoint's
    5XX alarms (the blue/green rollback's) see a broken artifact within a minute.
    """
    try:
        return inference.model_fn(model_dir)
    except ModelArtifactError as exc:
        LOG.error("the model artifact cannot be loaded: %s", exc)
        return BrokenArtifact(exc)


def transform_fn(
    model: inference.LoadedModel | BrokenArtifact,
    request_body: bytes | bytearray | str,
    content_type: str | None,
    accept: str | None,
    context: Any,
) -> tuple[str, str]:
    """One request through training.inference.respond; a non-200 status goes on `context`.

    `context` is TorchServe's Context (ts/context.py); set_response_status(code, phrase) decides
    the HTTP status TorchServe answers with.
    """
    if isinstance(model, BrokenArtifact):
        reply = inference.Reply(500, inference.load_failed_body(model.error))
    else:
        reply = inference.respond(model, request_body, content_type, accept)  # type: ignore[arg-type]
    if reply.status != 200:
        context.set_response_status(code=reply.status, phrase=http.HTTPStatus(reply.status).phrase)
    return reply.body, reply.content_type


def _answer_text_types(transform: Any) -> Any:
    """Answer application/json and text/csv requests 415 before the toolkit decodes them.

    Transformer.transform decodes a body of those types (content_types.UTF8_TYPES) as UTF-8
    before transform_fn sees it, so image bytes sent as application/json fail there with a
    UnicodeDecodeError answered as 500 plus a traceback, instead of the contract's 415. No
    public hook runs before that decode; this wrapper answers those types with the same 415
    input_fn raises for them.
    """
    from sagemaker_inference import content_types, utils

    @functools.wraps(transform)
    def wrapper(self: Any, data: list[dict[str, Any]], context: Any) -> list[str]:
        if len(data) == 1:  # batching is off (serving_environment); a batch keeps stock behaviour
            properties = context.request_processor[0].get_request_properties()
            content_type = utils.retrieve_content_type_header(properties)
            if content_type in content_types.UTF8_TYPES:
                try:
                    inference.input_fn(b"", content_type)
                except ServingError as exc:
                    context.set_response_status(
                        code=exc.status, phrase=http.HTTPStatus(exc.status).phrase
                    )
                    context.set_response_content_type(0, inference.JSON_CONTENT_TYPE)
                    return [inference.error_body(exc)]
        return transform(self, data, context)

    wrapper.scones_wrapped = True  # type: ignore[attr-defined]
    return wrapper


def _install() -> None:
    try:
        version = importlib.metadata.version("sagemaker-pytorch-inference")
        from sagemaker_inference.transformer import Transformer
    except (importlib.metadata.PackageNotFoundError, ImportError):
        return  # not in SageMaker's image: nothing to wrap
    if version != PATCHED_TOOLKIT_VERSION:
        LOG.warning(
            "sagemaker-pytorch-inference %s is not the tested %s: application/json bodies keep "
            "the toolkit's own handling", version, PATCHED_TOOLKIT_VERSION
        )
        return
    if not getattr(Transformer.transform, "scones_wrapped", False):
        Transformer.transform = _answer_text_types(Transformer.transform)


_install()
