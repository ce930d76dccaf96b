"""Image preprocessing shared by training and serving.

Training normalises with `to_tensor` and serving decodes, resizes and normalises with the same
functions, so a request sees exactly the transform the model was trained with.

- `decode_image(data)`: image bytes (PNG, JPEG or any other format Pillow reads, detected from the
  content, not from a declared type) -> uint8 array HxWx3 RGB; raises `InvalidImage`.
- `resize_to(rgb, size)`: any size -> exactly `size` (height, width): scale the shorter side to
  the target, then centre-crop, so the aspect ratio is kept and nothing is stretched.
- `to_tensor(batch, mean, std)`: uint8 NHWC -> float32 NCHW, `(x / 255 - mean) / std` per channel
  (mean and std are on the 0..1 scale, as stored in model_meta.json).
- `load_image(data, size)`: decode + resize in one step (large JPEGs decoded at reduced scale).

Nothing here imports torch at module import: decoding is usable without it (torch is imported
by `to_tensor` only).
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from training.errors import InvalidImage

if TYPE_CHECKING:
    import torch

# Images larger than this many pixels are refused before decoding: a small compressed body can
# expand to gigabytes (decompression bomb). 40 M pixels is well above any phone photo.
MAX_IMAGE_PIXELS = 40_000_000
_EXIF_ORIENTATION = 0x0112


def _open(data: bytes) -> Image.Image:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImage(f"image data must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise InvalidImage("image data is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) on huge images; we enforce our own limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(bytes(data)))
    except UnidentifiedImageError:
        raise InvalidImage(
            f"data is not an image in a known format "
            f"({len(data)} bytes starting {bytes(data[:8])!r})"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"data is not a decodable image ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"image is too large to decode ({exc})") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage(f"image has no pixels ({width}x{height})")
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidImage(
            f"image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{MAX_IMAGE_PIXELS}"
        )
    return image


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                # Phone photos carry their rotation in EXIF; apply it so the model sees the
                # picture upright.
                image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I;16"):
                # 16-bit greyscale: Pillow's convert() clips to 0..255; scale to 8 bits instead.
                grey = (np.asarray(image, dtype=np.uint32) // 257).astype(np.uint8)
                image = Image.fromarray(grey, mode="L")
            if image.mode != "RGB":
                # Palette, greyscale, 16-bit, CMYK and alpha images all become plain RGB; an
                # alpha channel is dropped, as the training images have none.
                image = image.convert("RGB")
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"image data is truncated or corrupt ({exc})") from exc
    if array.ndim != 3 or array.shape[2] != 3:
        raise InvalidImage(f"decoded image has unexpected shape {array.shape}")
    return array


def decode_image(data: bytes, min_size: Sequence[int] | None = None) -> np.ndarray:
    """Decode image bytes into a uint8 RGB array of shape (H, W, 3).

    The format is detected from the content (PNG, JPEG, GIF, BMP, WebP, TIFF, ... whatever Pillow
    reads); multi-frame images use their first frame. With `min_size` = (height, width), a large
    JPEG may be decoded at a reduced scale (libjpeg's DCT scaling, several times faster) that
    still covers twice that size; other formats are decoded in full. Raises `InvalidImage` for
    empty, unknown, truncated or corrupt data and for images over MAX_IMAGE_PIXELS.
    """
    image = _open(data)
    if min_size is not None:
        _draft(image, *_size_hw(min_size))
    return _to_rgb_array(image)


def _draft(image: Image.Image, target_h: int, target_w: int) -> None:
    if image.format != "JPEG" or image.getexif().get(_EXIF_ORIENTATION, 1) not in (1, 2, 3, 4):
        # Orientations 5-8 swap the axes, so the covering scale would be computed on the wrong
        # sides; those photos are decoded in full.
        return
    width, height = image.size
    scale = max(target_w / width, target_h / height)
    if scale < 0.5:
        # draft() picks the smallest DCT scale whose result is at least the requested size;
        # asking for twice the target leaves headroom for an anti-aliased resize afterwards.
        image.draft("RGB", (max(1, round(width * scale * 2)), max(1, round(height * scale * 2))))


def _size_hw(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or int(size[0]) < 1 or int(size[1]) < 1:
        raise ValueError(f"size must be (height, width) with positive values, got {size!r}")
    return int(size[0]), int(size[1])


def resize_to(rgb: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize and centre-crop an RGB uint8 array (H, W, 3) to exactly `size` = (height, width).

    The shorter side (relative to the target's aspect) is scaled to the target with an
    anti-aliased bicubic filter, then the centre is cropped. An image already at `size` is
    returned unchanged (no copy), which is the common case for CIFAR-sized requests.
    """
    target_h, target_w = _size_hw(size)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 array (H, W, 3), got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if (height, width) == (target_h, target_w):
        return rgb
    return np.asarray(_resize_image(Image.fromarray(rgb), target_h, target_w), dtype=np.uint8)


def _resize_image(image: Image.Image, target_h: int, target_w: int) -> Image.Image:
    width, height = image.size
    scale = max(target_w / width, target_h / height)
    # Round up so the scaled image always covers the target before cropping.
    new_w = max(target_w, round(width * scale))
    new_h = max(target_h, round(height * scale))
    if (new_w, new_h) != (width, height):
        # reducing_gap makes large downscales fast (box pre-reduction) at no visible cost.
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left = (new_w - target_w) // 2
    top = (new_h - target_h) // 2
    if (left, top, new_w, new_h) != (0, 0, target_w, target_h):
        image = image.crop((left, top, left + target_w, top + target_h))
    return image


def load_image(data: bytes, size: Sequence[int]) -> np.ndarray:
    """Decode image bytes and bring them to `size` = (height, width): uint8 (H, W, 3).

    `resize_to(decode_image(data, min_size=size), size)`: a large JPEG is decoded at a reduced
    scale that still covers the target, then resized and centre-cropped.
    """
    return resize_to(decode_image(data, min_size=size), size)


def to_tensor(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalise a uint8 batch (N, H, W, 3) into a contiguous float32 tensor (N, 3, H, W).

    Each channel c becomes `(x / 255 - mean[c]) / std[c]`; mean and std are on the 0..1 scale.
    Raises ValueError for a wrong dtype/shape or a non-positive std.
    """
    import torch  # here, not at import time: decoding must not require torch

    array = np.asarray(batch)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(f"expected uint8 batch (N, H, W, 3), got {array.dtype} {array.shape}")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got {mean!r} and {std!r}")
    if any(float(s) <= 0 for s in std):
        raise ValueError(f"std values must be positive, got {std!r}")
    scale, shift = _affine(tuple(float(m) for m in mean), tuple(float(s) for s in std))
    if not array.flags.writeable or not array.flags.c_contiguous:
        # Arrays viewing a decoded PIL image are read-only; torch wants writable memory.
        array = np.array(array, order="C")
    tensor = torch.from_numpy(array).permute(0, 3, 1, 2).to(torch.float32)
    return torch.addcmul(shift, tensor, scale).contiguous()


@functools.lru_cache(maxsize=16)
def _affine(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold /255, -mean and /std into one multiply-add x * scale + shift (cached: building the
    two small tensors costs more than applying them to a 32x32 image)."""
    import torch

    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)], dtype=torch.float32)
    return scale, shift.view(1, 3, 1, 1)
