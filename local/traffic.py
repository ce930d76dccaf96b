"""Traffic generator for local mode: clean or shifted requests to the local endpoint.

    python -m local.traffic --images .scones/data/test --scenario dark --count 200 \\
        [--url http://127.0.0.1:8080] [--endpoint-name scones-local] [--seed 0]

Scenarios (each a pure function of a staged test image and a seeded generator, so a run is
reproducible):

- ``clean``: the staged test images as they are.
- ``dark``: night-time photos: intensities scaled by 0.3 (about -1.7 EV).
- ``noise``: a cheap, dirty sensor: Gaussian noise, sigma 25/255 per channel.
- ``blur``: an out-of-focus or smeared lens: Gaussian blur, radius 1.2 px at 32x32.
- ``rotate``: a camera held sideways: rotated by 90 or 270 degrees.
- ``patterns``: not vehicles at all: generated stripes, checkerboards, gradients, blobs and
  noise textures (no test image involved).

Requests go to ``POST {url}/endpoints/{name}/invocations`` (the SageMaker runtime API path the
local endpoint serves) as ``image/png``, so they are captured exactly like production traffic.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

DARK_FACTOR = 0.3
NOISE_SIGMA = 25.0
BLUR_RADIUS = 1.2


class TrafficError(RuntimeError):
    """The endpoint refused a request or could not be reached."""


# --- scenarios -------------------------------------------------------------------------------


def darken(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rgb.astype(np.float64) * DARK_FACTOR + 0.5, 0, 255).astype(np.uint8)


def add_noise(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = rgb.astype(np.float64) + rng.normal(0.0, NOISE_SIGMA, rgb.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def blur(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(BLUR_RADIUS)))


def rotate(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, k=1 if rng.random() < 0.5 else 3))


def pattern(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A synthetic non-vehicle image: one of five pattern families with random parameters."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    kind = int(rng.integers(0, 5))
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # stripes at a random angle and period
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 10)
        t = (np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period) > 0)[..., None]
        img = np.where(t, c1, c2)
    elif kind == 1:  # checkerboard
        cell = int(rng.integers(2, 9))
        t = (((yy // cell) + (xx // cell)) % 2 == 0)[..., None]
        img = np.where(t, c1, c2)
    elif kind == 2:  # linear gradient between two colours
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = ((t - t.min()) / max(float(np.ptp(t)), 1e-9))[..., None]
        img = c1 * (1 - t) + c2 * t
    elif kind == 3:  # a few soft colour blobs on a flat background
        img = np.tile(c2, (h, w, 1))
        for _ in range(int(rng.integers(2, 6))):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 10)
            mask = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
            img = img * (1 - mask) + rng.uniform(0, 255, 3) * mask
    else:  # uniform noise texture
        img = rng.uniform(0, 255, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


SHIFTS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "dark": darken,
    "noise": add_noise,
    "blur": blur,
    "rotate": rotate,
}
SCENARIOS: tuple[str, ...] = ("clean", *SHIFTS, "patterns")


def scenario_sample(
    scenario: str, source: np.ndarray, count: int, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` images of a scenario and the index of the source image each was made from
    (-1 for generated patterns). Sources are visited in a seeded random order, cycling when
    ``count`` exceeds them."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if source.ndim != 4 or source.shape[0] == 0 or source.shape[-1] != 3:
        raise ValueError(f"source must be a non-empty uint8 (N, H, W, 3) batch, got {source.shape}")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(source)) for _ in range(count // len(source) + 1)])
    images, indices = [], np.full(count, -1, dtype=np.int64)
    for i in range(count):
        if scenario == "patterns":
            images.append(pattern(source.shape[1:3], rng))
            continue
        indices[i] = order[i]
        img = source[order[i]]
        images.append(img if scenario == "clean" else SHIFTS[scenario](img, rng))
    return images, indices


def scenario_images(
    scenario: str, source: np.ndarray, count: int, seed: int = 0
) -> Iterator[np.ndarray]:
    """The images of :func:`scenario_sample`, one at a time."""
    yield from scenario_sample(scenario, source, count, seed)[0]


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def load_source(images: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a staged split (``DIR/test`` holding dataset.npz, as
    ``python -m training.stage`` writes it)."""
    path = Path(images)
    npz = path / "dataset.npz" if path.is_dir() else path
    if not npz.is_file():
        raise FileNotFoundError(f"{npz} not found: stage the data with `python -m training.stage`")
    with np.load(npz, allow_pickle=False) as data:
        return np.asarray(data["images"], dtype=np.uint8), np.asarray(data["labels"])


# --- sending ---------------------------------------------------------------------------------


@dataclass
class EndpointClient:
    """Keep-alive HTTP client of the local endpoint's runtime API path."""

    url: str
    endpoint_name: str = "scones-local"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"endpoint URL must be http://host:port, got {self.url!r}")
        self._host, self._port = parsed.hostname, parsed.port or 80
        self._conn: http.client.HTTPConnection | None = None

    def invoke(self, body: bytes, content_type: str = "image/png") -> list[float]:
        path = f"/endpoints/{urllib.parse.quote(self.endpoint_name)}/invocations"
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
            try:
                self._conn.request("POST", path, body=body, headers={"Content-Type": content_type})
                response = self._conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 2:
                    raise TrafficError(f"cannot reach {self.url}: {exc}") from exc
                continue
            if response.status != 200:
                raise TrafficError(
                    f"endpoint answered {response.status}: {payload[:200].decode(errors='replace')}"
                )
            return json.loads(payload)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def send(
    client: EndpointClient, images: Iterator[np.ndarray] | Sequence[np.ndarray]
) -> list[list[float]]:
    """Send each image as a PNG request; returns the answers in order."""
    return [client.invoke(png_bytes(img)) for img in images]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m local.traffic", description=__doc__.split("\n")[0])
    p.add_argument("--images", required=True, help="staged split dir (holds dataset.npz)")
    p.add_argument("--scenario", choices=SCENARIOS, default="clean")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--url", default="http://127.0.0.1:8080", help="local endpoint base URL")
    p.add_argument("--endpoint-name", default="scones-local")
    args = p.parse_args(argv)
    try:
        source, _ = load_source(args.images)
        client = EndpointClient(args.url, args.endpoint_name)
        answers = send(client, scenario_images(args.scenario, source, args.count, args.seed))
        client.close()
    except (OSError, ValueError, TrafficError) as exc:
        print(f"traffic: {exc}", file=sys.stderr)
        return 2
    conf = [max(a) for a in answers]
    mean = sum(conf) / len(conf) if conf else float("nan")
    print(f"sent {len(answers)} '{args.scenario}' requests; mean confidence {mean:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
