"""SageMaker PyTorch serving hooks: model_fn, input_fn, predict_fn, output_fn.

The artifact's `code/inference.py` is this file: SageMaker's PyTorch inference image imports it as
a top-level module with `code/` on sys.path, so `training.*` resolves to the copy of the package
shipped beside it. The local endpoint server (local/endpoint_server.py) calls the same four
functions, so local and cloud serving share one code path.

Request flow: input_fn checks the content type and size and decodes the image (any size);
predict_fn resizes/crops it to the model's input size, normalises it exactly as training did
(training.preprocess.to_tensor) and returns softmax(logits / temperature) in class order;
output_fn renders that as a JSON list. A request whose Accept names GATE_CONTENT_TYPE
(training.gate) gets the probabilities plus the safety gate's verdict on the same forward pass
(gated_predict_fn); docs/design.md gives both shapes.

Rejected requests raise the named errors of training.errors (UnsupportedContentType -> 415,
InvalidImage -> 400, PayloadTooLarge -> 413, NotAcceptable -> 406). `respond` runs the three
request hooks and turns a named error into its status and the pure JSON body
{"error": NAME, "message": TEXT}: the one answer both servers send. SageMaker's image does not
import this module directly: the artifact's code/inference.py is training/sagemaker_entry.py,
which exposes model_fn + transform_fn over `respond` (see that module for why).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import serving_module
from training.errors import (
    InvalidImage,
    ModelArtifactError,
    NotAcceptable,
    PayloadTooLarge,
    ServingError,
    UnsupportedContentType,
)
from training.gate import GATE_CONTENT_TYPE, GATE_FILE, Gate, GateError, check, load_gate
from training.model import build_model
from training.preprocess import decode_image, resize_to, to_tensor
from training.serving_module import SERVING_MODULE_KEY, ServingModule

CONTENT_TYPES = ("image/png", "image/jpeg", "application/x-image")
JSON_CONTENT_TYPE = "application/json"
# SageMaker real-time endpoints refuse request payloads over 6 MB; the local server and the hook
# enforce the same limit so a request that works locally also fits in the cloud.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# A JPEG is decoded at a reduced DCT scale while its shorter side stays at least this large:
# a 12-megapixel photo then decodes ~4x faster, still far above the 32x32 model input.
DECODE_MIN_SIDE = 256
WEIGHTS_FILE = "model.pth"
META_FILE = "model_meta.json"
# Environment override for the number of intra-op threads torch uses per forward pass.
THREADS_ENV = "SCONES_TORCH_THREADS"

LOG = logging.getLogger(__name__)
NetworkModule = torch.nn.Module | ServingModule

@dataclass(frozen=True)
class LoadedModel:
    """What model_fn returns: the network in eval mode plus what serving needs from the meta."""

    module: NetworkModule  # module(x) -> logits; module.forward_with_features(x) -> both
    classes: list[str]
    input_size: tuple[int, int]
    mean: list[float]
    std: list[float]
    temperature: float
    # The artifact's gate.json; None for an artifact from before the gate (then the gate's
    # Accept type is refused with NotAcceptable).
    gate: Gate | None = None


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count for serving and return it.

    `threads` defaults to $SCONES_TORCH_THREADS, else 1. A batch-1 forward pass of this small
    network gains little from a second thread, while concurrent requests each running
    multi-threaded ops oversubscribe the cores and inflate tail latency; one thread per request
    scales better (benchmarks/serve_benchmark.py measures both).
    """
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "1")
        try:
            threads = int(raw)
        except ValueError as exc:
            raise ValueError(f"{THREADS_ENV} must be an integer, got {raw!r}") from exc
    if threads < 1:
        raise ValueError(f"torch thread count must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    return threads


def _read_meta(model_dir: Path) -> dict[str, Any]:
    path = model_dir / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"{path} is missing") from exc
    except (OSError, ValueError) as exc:
        raise ModelArtifactError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelArtifactError(f"{path} must hold a JSON object")
    for key in ("arch", "classes", "input_size", "mean", "std"):
        if key not in meta:
            raise ModelArtifactError(f"{path} lacks the key {key!r}")
    return meta


def _validated(meta: dict[str, Any], source: Path) -> tuple[list[str], tuple[int, int], float]:
    classes = meta["classes"]
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) for c in classes)
    ):
        raise ModelArtifactError(f"{source}: 'classes' must be a list of >= 2 names")
    size = meta["input_size"]
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(v, int) and v > 0 for v in size)
    ):
        raise ModelArtifactError(f"{source}: 'input_size' must be [height, width], got {size!r}")
    temperature = float(meta.get("temperature", 1.0))
    if not math.isfinite(temperature) or temperature <= 0:
        raise ModelArtifactError(f"{source}: 'temperature' must be > 0, got {temperature!r}")
    for key in ("mean", "std"):
        values = meta[key]
        if not isinstance(values, list) or len(values) != 3:
            raise ModelArtifactError(f"{source}: {key!r} must list 3 values (RGB)")
    if any(float(s) <= 0 for s in meta["std"]):
        raise ModelArtifactError(f"{source}: 'std' values must be > 0")
    return list(classes), (int(size[0]), int(size[1])), temperature


def _load_network(directory: Path, meta: dict[str, Any], num_classes: int) -> NetworkModule:
    """The artifact's network: its frozen module (model.ts) when model_meta.json names one,
    else the eager network built from `arch` and model.pth (artifacts that predate model.ts)."""
    frozen = meta.get(SERVING_MODULE_KEY)
    if frozen is not None:
        path = directory / str(frozen)
        if not path.is_file():
            raise ModelArtifactError(f"{path} is missing ({META_FILE} names it)")
        try:
            return serving_module.load(path)
        except (RuntimeError, OSError, ValueError) as exc:
            message = f"{path} is not a loadable TorchScript module ({exc})"
            raise ModelArtifactError(message) from exc
    arch = dict(meta["arch"])
    arch.setdefault("num_classes", num_classes)
    try:
        module = build_model(arch)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelArtifactError(f"{directory / META_FILE}: bad 'arch' ({exc})") from exc
    weights = directory / WEIGHTS_FILE
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"{weights} is missing") from exc
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ModelArtifactError(f"{weights} does not fit the arch in {META_FILE} ({exc})") from exc
    module.eval()
    # NHWC weights: oneDNN's convolutions skip a layout reorder per call (about a quarter of
    # the batch-1 forward pass on 2 cores), with the same logits as NCHW
    # (docs/sagemaker-parity.md); predict_fn hands the input over in the same layout.
    return module.to(memory_format=torch.channels_last)


def model_fn(model_dir: str) -> LoadedModel:
    """Load the artifact in `model_dir` (model_meta.json + model.ts, else model.pth) to serve.

    Raises ModelArtifactError naming the file and field when the artifact is incomplete or
    inconsistent (e.g. a class list that does not match the network's outputs).
    """
    directory = Path(model_dir)
    meta = _read_meta(directory)
    classes, input_size, temperature = _validated(meta, directory / META_FILE)
    module = _load_network(directory, meta, len(classes))
    if os.environ.get(THREADS_ENV):
        # Serving processes set this (the local server does; the SageMaker model's environment
        # should); a batch job such as evaluation keeps torch's own default.
        configure_threads()
    try:
        # Also the warm-up: the first forwards allocate, pick kernels and (frozen module)
        # optimise the graph, tens of ms that would otherwise land on the first requests.
        logits = serving_module.warm_up(module, input_size)
    except RuntimeError as exc:
        raise ModelArtifactError(
            f"{directory}: the network cannot run on input_size {list(input_size)} ({exc})"
        ) from exc
    if logits.shape != (1, len(classes)):
        raise ModelArtifactError(
            f"{directory}: the network outputs {tuple(logits.shape[1:])} values per image but "
            f"{META_FILE} lists {len(classes)} classes"
        )
    try:
        gate = load_gate(directory, len(classes))
    except GateError as exc:
        raise ModelArtifactError(str(exc)) from exc
    loaded = LoadedModel(
        module=module,
        classes=classes,
        input_size=input_size,
        mean=[float(v) for v in meta["mean"]],
        std=[float(v) for v in meta["std"]],
        temperature=temperature,
        gate=gate,
    )
    if gate is not None:
        blank = np.zeros((1, *input_size, 3), np.uint8)
        try:  # the gate's feature width must be the network's
            check(blank[0], _forward(blank, loaded)[1][0], gate)
        except GateError as exc:
            raise ModelArtifactError(f"{directory / GATE_FILE}: {exc}") from exc
    return loaded


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type/Accept value: 'Image/PNG; q=1' -> 'image/png'."""
    return (header or "").split(";", 1)[0].strip().lower()


def input_fn(request_body: bytes, request_content_type: str | None) -> np.ndarray:
    """Check and decode a request: image bytes -> uint8 RGB array (H, W, 3), any size.

    Raises UnsupportedContentType (415) unless the type is image/png, image/jpeg or
    application/x-image (parameters ignored); PayloadTooLarge (413) over MAX_PAYLOAD_BYTES;
    InvalidImage (400) when the bytes are not a decodable image. The format is detected from the
    bytes, so a JPEG sent as image/png still decodes.
    """
    content_type = media_type(request_content_type)
    if content_type not in CONTENT_TYPES:
        raise UnsupportedContentType(
            f"content type {request_content_type!r} is not supported; "
            f"send one of {', '.join(CONTENT_TYPES)}"
        )
    if isinstance(request_body, str):
        # Only a misconfigured caller sends text; images are binary.
        raise InvalidImage("request body is text, not image bytes")
    size = len(request_body)
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"request body is {size} bytes, over the limit of {MAX_PAYLOAD_BYTES}"
        )
    return decode_image(request_body, min_size=(DECODE_MIN_SIDE, DECODE_MIN_SIDE))


def _model_input(input_data: np.ndarray, model: LoadedModel) -> np.ndarray:
    """One decoded image (any size) or a batch at the input size -> uint8 batch (N, h, w, 3)."""
    array = np.asarray(input_data)
    if array.ndim == 3:
        return resize_to(array, model.input_size)[None]
    if array.ndim == 4 and tuple(array.shape[1:3]) == model.input_size:
        return array
    raise InvalidImage(f"cannot classify an array of shape {array.shape}")


def _forward(batch: np.ndarray, model: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, C) float64, penultimate features (N, D)) for a uint8 batch."""
    tensor = to_tensor(batch, model.mean, model.std).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        logits, features = model.module.forward_with_features(tensor)
    # Softmax in float64 so the probabilities sum to 1 to within ~1e-16 after JSON round-trip.
    scaled = logits.double() / model.temperature
    return torch.softmax(scaled, dim=1).numpy(), features.double().numpy()


def predict_fn(input_data: np.ndarray, model: LoadedModel) -> np.ndarray:
    """Class probabilities (float64, shape (C,), class order, sum 1) for one decoded image.

    Also accepts a batch (N, H, W, 3) of images already at the model's input size, returning
    (N, C); used by benchmarks and evaluation.
    """
    array = np.asarray(input_data)
    probabilities, _ = _forward(_model_input(array, model), model)
    return probabilities[0] if array.ndim == 3 else probabilities


@dataclass(frozen=True)
class GatedPrediction:
    """Probabilities (C,) plus the safety gate's verdict (training.gate.check) on one image."""

    probabilities: np.ndarray
    gate: dict[str, Any]


def gated_predict_fn(input_data: np.ndarray, model: LoadedModel) -> GatedPrediction:
    """predict_fn for one decoded image, plus the gate's verdict from the same forward pass.

    Raises NotAcceptable (406) when the artifact has no gate.json."""
    if model.gate is None:
        raise NotAcceptable(
            f"accept {GATE_CONTENT_TYPE!r} needs the artifact's {GATE_FILE}, which this model "
            "lacks; retrain it"
        )
    array = np.asarray(input_data)
    if array.ndim != 3:
        raise InvalidImage(f"the gate judges one decoded image, got an array of {array.shape}")
    batch = _model_input(array, model)
    probabilities, features = _forward(batch, model)
    return GatedPrediction(probabilities[0], check(batch[0], features[0], model.gate))


def wants_gate(accept: str | None) -> bool:
    """True when the Accept header names the gate's type (training.gate.GATE_CONTENT_TYPE)."""
    return GATE_CONTENT_TYPE in {media_type(part) for part in (accept or "").split(",")}


def output_fn(prediction: np.ndarray | GatedPrediction, accept: str | None) -> tuple[str, str]:
    """Render probabilities as the JSON list docs/design.md specifies; returns (body, content type).

    Accept may be absent, */*, application/* or application/json (SageMaker's default);
    anything else raises NotAcceptable (406). A GatedPrediction (Accept naming
    GATE_CONTENT_TYPE) renders as {"probabilities": [...], "gate": {...}} of that type.
    """
    if isinstance(prediction, GatedPrediction):
        body = {
            "probabilities": np.asarray(prediction.probabilities, dtype=np.float64).tolist(),
            "gate": prediction.gate,
        }
        return json.dumps(body), GATE_CONTENT_TYPE
    wanted = {media_type(part) for part in (accept or "").split(",")}
    if not wanted & {"", "*/*", "application/*", JSON_CONTENT_TYPE}:
        raise NotAcceptable(f"accept {accept!r} is not supported; this endpoint answers JSON")
    return json.dumps(np.asarray(prediction, dtype=np.float64).tolist()), JSON_CONTENT_TYPE


@dataclass(frozen=True)
class Reply:
    """One answer to one request: HTTP status, UTF-8 body and its content type."""

    status: int
    body: str
    content_type: str = JSON_CONTENT_TYPE


def error_body(error: ServingError) -> str:
    """The contract's error body for a named error: {"error": NAME, "message": TEXT}."""
    return json.dumps({"error": error.name, "message": str(error)})


def load_failed_body(error: BaseException) -> str:
    """The answer body while the artifact cannot be loaded: {"error": "ModelLoadFailed", ...}."""
    return json.dumps({"error": "ModelLoadFailed", "message": str(error)})


def respond(
    model: LoadedModel, body: bytes | str, content_type: str | None, accept: str | None
) -> Reply:
    """input_fn -> predict_fn -> output_fn for one request; a named error becomes its Reply.

    Any other exception (a bug, a broken model) is logged with its traceback and answered 500
    {"error": "InternalFailure", "message": "TYPE: TEXT"}: the traceback stays in the log.
    """
    try:
        image = input_fn(body, content_type)  # type: ignore[arg-type]
        prediction = (
            gated_predict_fn(image, model) if wants_gate(accept) else predict_fn(image, model)
        )
        payload, response_type = output_fn(prediction, accept)
    except ServingError as exc:
        return Reply(exc.status, error_body(exc))
    except Exception as exc:  # answer 500 and keep serving
        LOG.exception("invocation failed")
        message = f"{type(exc).__name__}: {exc}"
        return Reply(500, json.dumps({"error": "InternalFailure", "message": message}))
    return Reply(200, payload, response_type)
