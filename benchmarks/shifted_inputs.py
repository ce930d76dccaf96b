"""Evaluation sets of shifted and foreign inputs for the per-request safety gate (docs/safety.md).

Deterministic (seeded) sets of encoded images (PNG, or JPEG for ``heavy_jpeg``), built from:

- the dev archive's photos, transformed: ``night`` (intensity x0.35), ``overexposed`` (gain
  2.5, clipped), ``blur`` (Gaussian, radius 1.5 at 32x32), ``sensor_noise`` (Gaussian, sigma 25
  of 255), ``heavy_jpeg`` (quality 8), ``rotated`` (90 degrees either way: a camera held
  sideways); ``clean`` is the photo itself. These keep their true label: a routed image is
  misrouted when its class is wrong.
- generated images: ``flat`` (one colour, a little noise) and ``random_noise`` (uniform pixels,
  32 to 224 px).
- ``not_vehicle``: crops of real photos shipped in installed packages (scikit-image's
  ``skimage.data``, matplotlib's sample data) plus procedural textures. Every routed one is
  misrouted.

Two disjoint parts, so nothing is tuned on what is reported:

- ``part="tune"``: transformations of the validation split (the split ``training.train`` carves
  with the same seed), tuning photos (:data:`TUNE_PHOTOS`) and texture families.
- ``part="report"``: transformations of the test split, other photos (:data:`REPORT_PHOTOS`:
  people, animals, objects, scenery) and other texture families.
"""

from __future__ import annotations

import importlib.resources
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SHIFT_KINDS = ("night", "overexposed", "blur", "sensor_noise", "heavy_jpeg", "rotated")
GENERATED_KINDS = ("flat", "random_noise")
KINDS: tuple[str, ...] = ("clean", *SHIFT_KINDS, *GENERATED_KINDS, "not_vehicle")
PARTS = ("tune", "report")

# (package, file) pairs. Vehicles (skimage's motorcycle_* stereo pair, the rocket) are left out.
TUNE_PHOTOS: tuple[tuple[str, str], ...] = (
    ("skimage.data", "brick.png"),
    ("skimage.data", "grass.png"),
    ("skimage.data", "gravel.png"),
    ("skimage.data", "coins.png"),
    ("skimage.data", "moon.png"),
    ("skimage.data", "page.png"),
    ("skimage.data", "text.png"),
    ("skimage.data", "cell.png"),
    ("skimage.data", "clock_motion.png"),
    ("skimage.data", "ihc.png"),
    ("skimage.data", "retina.jpg"),
    ("skimage.data", "color.png"),
)
REPORT_PHOTOS: tuple[tuple[str, str], ...] = (
    ("skimage.data", "astronaut.png"),  # a person
    ("skimage.data", "chelsea.png"),  # a cat
    ("skimage.data", "coffee.png"),  # an object
    ("skimage.data", "horse.png"),  # an animal (silhouette)
    ("skimage.data", "camera.png"),  # a person with a camera, scenery behind
    ("skimage.data", "hubble_deep_field.jpg"),  # the sky
    ("skimage.data", "logo.png"),  # a graphic
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),  # a person
)
# scikit-image's 200 Labeled Faces in the Wild crops (25x25 grey): people, report part only.
FACES = ("skimage.data", "lfw_subset.npy")


class MissingSampleImages(RuntimeError):
    """A package whose sample photos the foreign set needs is not installed."""


@dataclass(frozen=True)
class InputSet:
    """One kind of input: encoded images, and each one's true class index (None: no vehicle)."""

    kind: str
    images: list[bytes]
    labels: list[int | None]


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(
        out, format="JPEG", quality=quality
    )
    return out.getvalue()


def _scaled(rgb: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(rgb.astype(np.float64) * gain, 0, 255).round().astype(np.uint8)


def _blur(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius=1.5)))


def _noisy(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, 25.0, size=rgb.shape)
    return np.clip(rgb.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)


def transform(kind: str, rgb: np.ndarray, rng: np.random.Generator) -> bytes:
    """One vehicle photo (uint8 HxWx3) turned into the encoded image of a shift kind."""
    if kind == "clean":
        return _png(rgb)
    if kind == "night":
        return _png(_scaled(rgb, 0.35))
    if kind == "overexposed":
        return _png(_scaled(rgb, 2.5))
    if kind == "blur":
        return _png(_blur(rgb))
    if kind == "sensor_noise":
        return _png(_noisy(rgb, rng))
    if kind == "heavy_jpeg":
        return _jpeg(rgb, quality=8)
    if kind == "rotated":
        return _png(np.rot90(rgb, k=int(rng.choice([1, 3]))).copy())
    raise ValueError(f"unknown shift kind {kind!r}; choose from {('clean', *SHIFT_KINDS)}")


def flat_image(rng: np.random.Generator) -> bytes:
    size = int(rng.choice([32, 64, 128]))
    colour = rng.integers(0, 256, size=3)
    noise = rng.normal(0.0, 2.0, size=(size, size, 3))
    return _png(np.clip(colour + noise, 0, 255).round().astype(np.uint8))


def noise_image(rng: np.random.Generator) -> bytes:
    size = int(rng.choice([32, 64, 224]))
    return _png(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))


def _package_file(package: str, name: str) -> Path:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise MissingSampleImages(
            f"the foreign-photo set needs the package {package!r} "
            "(pip install -r requirements-dev.txt)"
        ) from exc
    path = Path(str(root.joinpath(name)))
    if not path.is_file():
        raise MissingSampleImages(f"{package} has no sample file {name!r}")
    return path


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _random_crop(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 1.0))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    crop = rgb[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = int(rng.choice([32, 32, 64, 128]))
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((out, out), Image.LANCZOS))


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.integers(0, 256, size=(cells, cells, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC))


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(3, 12)
    wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period) > 0
    a, b = rng.integers(0, 256, size=(2, 3))
    return np.where(wave[..., None], a, b).astype(np.uint8)


def _checker(rng: np.random.Generator, size: int) -> np.ndarray:
    cell = int(rng.integers(2, 9))
    y, x = np.mgrid[0:size, 0:size]
    board = ((y // cell + x // cell) % 2).astype(bool)
    a, b = rng.integers(0, 256, size=(2, 3))
    return np.where(board[..., None], a, b).astype(np.uint8)


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    t = np.linspace(0, 1, size)[None, :, None]
    if rng.random() < 0.5:
        t = t.transpose(1, 0, 2)
    a, b = rng.integers(0, 256, size=(2, 3))
    return (a + (b - a) * t).repeat(size, axis=0 if t.shape[0] == 1 else 1).astype(np.uint8)


def _shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    canvas = np.empty((size, size, 3), dtype=np.float64)
    canvas[:] = rng.integers(0, 256, size=3)
    y, x = np.mgrid[0:size, 0:size]
    for _ in range(int(rng.integers(2, 7))):
        cy, cx = rng.uniform(0, size, size=2)
        r = rng.uniform(size * 0.08, size * 0.35)
        canvas[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 256, size=3)
    return canvas.astype(np.uint8)


def _plasma(rng: np.random.Generator, size: int) -> np.ndarray:
    layers = [_smooth_field(rng, size, cells).astype(np.float64) for cells in (2, 4, 8, 16)]
    mixed = sum(w * layer for w, layer in zip((0.4, 0.3, 0.2, 0.1), layers, strict=True))
    return np.clip(mixed, 0, 255).astype(np.uint8)


# Texture families per part: the report's families are never seen while tuning.
_TEXTURES: dict[str, tuple[Callable[[np.random.Generator, int], np.ndarray], ...]] = {
    "tune": (
        lambda rng, s: _smooth_field(rng, s, int(rng.integers(3, 9))),
        _stripes,
        _checker,
    ),
    "report": (_gradient, _shapes, _plasma),
}


def foreign_images(part: str, count: int, seed: int) -> list[bytes]:
    """`count` encoded non-vehicle images for `part`: about 3/4 photo crops, 1/4 textures."""
    rng = np.random.default_rng([seed, PARTS.index(part), 7])
    photos = [_rgb(Image.open(_package_file(*ref))) for ref in _photos(part)]
    faces: np.ndarray | None = None
    if part == "report":
        faces = np.load(_package_file(*FACES))
    out: list[bytes] = []
    for i in range(count):
        if i % 4 == 3:
            family = _TEXTURES[part][int(rng.integers(len(_TEXTURES[part])))]
            out.append(_png(family(rng, int(rng.choice([32, 64])))))
        elif faces is not None and i % 4 == 2:
            face = faces[int(rng.integers(len(faces)))]
            grey = np.clip(face * 255.0 if face.max() <= 1.0 else face, 0, 255).astype(np.uint8)
            rgb = np.repeat(grey[..., None], 3, axis=2)
            out.append(_png(np.asarray(Image.fromarray(rgb).resize((32, 32), Image.LANCZOS))))
        else:
            out.append(_png(_random_crop(photos[int(rng.integers(len(photos)))], rng)))
    return out


def _photos(part: str) -> tuple[tuple[str, str], ...]:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    return TUNE_PHOTOS if part == "tune" else REPORT_PHOTOS


def vehicle_photos(part: str, archive: str, classes: Sequence[str], seed: int = 0) -> tuple[
    np.ndarray, np.ndarray
]:
    """(images, labels) the part transforms: the validation split carved by training.train
    with `seed` (tune) or the test split (report)."""
    from training.cifar import load_cifar
    from training.train import stratified_split

    _photos(part)
    data = load_cifar(archive, list(classes))
    if part == "report":
        return data.test.images, data.test.labels
    # training.train draws the split first from default_rng(seed) with its default fraction.
    _, val_idx = stratified_split(data.train.labels, 0.15, np.random.default_rng(seed))
    return data.train.images[val_idx], data.train.labels[val_idx]


def build_sets(
    part: str,
    archive: str,
    classes: Sequence[str],
    per_kind: int = 100,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
) -> dict[str, InputSet]:
    """Every requested kind's set for `part`, `per_kind` images each (clean: the whole split
    when `per_kind` is 0)."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; choose from {KINDS}")
    images, labels = vehicle_photos(part, archive, classes, seed)
    sets: dict[str, InputSet] = {}
    for k_index, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, PARTS.index(part), k_index, 11])
        if kind in ("clean", *SHIFT_KINDS):
            n = len(images) if per_kind <= 0 else min(per_kind, len(images))
            pick = np.sort(rng.permutation(len(images))[:n])
            sets[kind] = InputSet(
                kind,
                [transform(kind, images[i], rng) for i in pick],
                [int(labels[i]) for i in pick],
            )
        elif kind == "flat":
            n = per_kind or 100
            sets[kind] = InputSet(kind, [flat_image(rng) for _ in range(n)], [None] * n)
        elif kind == "random_noise":
            n = per_kind or 100
            sets[kind] = InputSet(kind, [noise_image(rng) for _ in range(n)], [None] * n)
        else:
            n = per_kind or 100
            sets[kind] = InputSet(kind, foreign_images(part, n, seed), [None] * n)
    return sets
