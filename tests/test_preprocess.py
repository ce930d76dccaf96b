"""training.preprocess: decoding by content, resize/crop to the model size, normalisation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from serving_support import encode, random_rgb

from training.errors import InvalidImage
from training.preprocess import (
    MAX_IMAGE_PIXELS,
    decode_image,
    load_image,
    resize_to,
    to_tensor,
)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "GIF", "PPM"])
def test_lossless_formats_decode_to_the_same_pixels(fmt: str) -> None:
    rgb = random_rgb(24, 40, seed=1)
    if fmt == "GIF":  # palette format: use an image with few colours so it stays exact
        rgb = (rgb // 128 * 255).astype(np.uint8)
    params = {"lossless": True} if fmt == "WEBP" else {}
    decoded = decode_image(encode(rgb, fmt, **params))
    assert decoded.dtype == np.uint8
    assert decoded.shape == (24, 40, 3)
    np.testing.assert_array_equal(decoded, rgb)


def test_jpeg_decodes_close_to_the_original() -> None:
    rgb = np.full((32, 32, 3), (200, 30, 90), dtype=np.uint8)
    decoded = decode_image(encode(rgb, "JPEG", quality=95))
    assert decoded.shape == (32, 32, 3)
    assert np.abs(decoded.astype(int) - rgb.astype(int)).max() <= 4


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "1", "I;16"])
def test_other_modes_become_rgb(mode: str) -> None:
    rgb = random_rgb(seed=2)
    if mode == "I;16":
        image = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    else:
        image = Image.fromarray(rgb).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    decoded = decode_image(buffer.getvalue())
    assert decoded.shape == (32, 32, 3) and decoded.dtype == np.uint8
    if mode == "I;16":  # 16-bit greyscale is scaled to 8 bits, not clipped
        np.testing.assert_array_equal(decoded[..., 0], rgb[..., 0])


def test_exif_orientation_is_applied() -> None:
    rgb = np.zeros((20, 40, 3), dtype=np.uint8)
    rgb[:, :20] = 255  # left half white
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif)
    decoded = decode_image(buffer.getvalue())
    assert decoded.shape == (40, 20, 3)
    assert decoded[:15].mean() > 200 and decoded[25:].mean() < 50  # white half now on top


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 20],
    ids=["empty", "text", "png-signature-only"],
)
def test_garbage_raises_invalid_image(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        decode_image(data)


def test_truncated_png_raises_invalid_image() -> None:
    data = encode(random_rgb(64, 64))
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2])


def test_non_bytes_raise_invalid_image() -> None:
    with pytest.raises(InvalidImage, match="bytes"):
        decode_image("a string")  # type: ignore[arg-type]


def test_oversized_dimensions_are_refused_before_decoding() -> None:
    # A 1-bit PNG of 8000x8000 is small on the wire but 64 M pixels decoded.
    side = int(MAX_IMAGE_PIXELS**0.5) + 100
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 1_000_000
    with pytest.raises(InvalidImage, match="over the limit"):
        decode_image(buffer.getvalue())


def test_resize_keeps_an_image_already_at_size() -> None:
    rgb = random_rgb()
    assert resize_to(rgb, (32, 32)) is rgb


def test_resize_scales_the_short_side_and_centre_crops() -> None:
    # Left third red, middle third green, right third blue: a centre crop keeps mostly green.
    rgb = np.zeros((60, 180, 3), dtype=np.uint8)
    rgb[:, :60, 0] = 255
    rgb[:, 60:120, 1] = 255
    rgb[:, 120:, 2] = 255
    out = resize_to(rgb, (32, 32))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[..., 1].mean() > 200
    assert out[..., 0].mean() < 30 and out[..., 2].mean() < 30


def test_resize_upscales_small_images() -> None:
    assert resize_to(random_rgb(8, 5), (32, 32)).shape == (32, 32, 3)


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    target=st.tuples(st.integers(1, 64), st.integers(1, 64)),
)
def test_resize_any_size_to_any_target(height: int, width: int, target: tuple[int, int]) -> None:
    out = resize_to(random_rgb(height, width, seed=height * 1000 + width), target)
    assert out.shape == (*target, 3)
    assert out.dtype == np.uint8


def test_resize_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        resize_to(random_rgb(), (0, 32))
    with pytest.raises(ValueError):
        resize_to(np.zeros((4, 4), dtype=np.uint8), (2, 2))


def test_load_image_decodes_large_jpegs_at_reduced_scale_to_the_target() -> None:
    rgb = np.zeros((1200, 1600, 3), dtype=np.uint8)
    rgb[:, :, 2] = 220
    out = load_image(encode(rgb, "JPEG", quality=90), (32, 32))
    assert out.shape == (32, 32, 3)
    assert abs(float(out[..., 2].mean()) - 220) < 6
    # decode_image with min_size keeps at least the requested size (twice, for the resize)
    drafted = decode_image(encode(rgb, "JPEG", quality=90), min_size=(64, 64))
    assert drafted.shape[0] >= 128 and drafted.shape[0] < 1200


def test_to_tensor_layout_and_values() -> None:
    batch = np.stack([random_rgb(seed=s) for s in range(3)])
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 0.125]
    tensor = to_tensor(batch, mean, std)
    assert tensor.dtype == torch.float32
    assert tuple(tensor.shape) == (3, 3, 32, 32)
    assert tensor.is_contiguous()
    expected = (batch.transpose(0, 3, 1, 2) / 255.0 - np.array(mean)[None, :, None, None]) / (
        np.array(std)[None, :, None, None]
    )
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_to_tensor_accepts_read_only_arrays() -> None:
    batch = np.asarray(Image.fromarray(random_rgb()))[None]
    assert not np.asarray(Image.fromarray(random_rgb())).flags.writeable
    assert to_tensor(batch, [0.5] * 3, [0.5] * 3).shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("batch", "mean", "std"),
    [
        (np.zeros((1, 32, 32, 3), dtype=np.float32), [0.5] * 3, [0.5] * 3),
        (np.zeros((32, 32, 3), dtype=np.uint8), [0.5] * 3, [0.5] * 3),
        (np.zeros((1, 32, 32, 4), dtype=np.uint8), [0.5] * 3, [0.5] * 3),
        (np.zeros((1, 32, 32, 3), dtype=np.uint8), [0.5] * 2, [0.5] * 3),
        (np.zeros((1, 32, 32, 3), dtype=np.uint8), [0.5] * 3, [0.5, 0.0, 0.5]),
    ],
    ids=["float", "no-batch-axis", "four-channels", "short-mean", "zero-std"],
)
def test_to_tensor_rejects_bad_input(batch: np.ndarray, mean: list, std: list) -> None:
    with pytest.raises(ValueError):
        to_tensor(batch, mean, std)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=256))
def test_arbitrary_bytes_decode_or_raise_invalid_image(data: bytes) -> None:
    try:
        out = decode_image(data)
    except InvalidImage:
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
