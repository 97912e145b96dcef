"""interp.data.images: any upload becomes an 8-bit MNIST-style input or a clear ImageError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from interp.data.images import (
    FORMATS,
    UPLOAD_EXTENSIONS,
    ImageError,
    decode_image,
    prepare_drawing,
    prepare_upload,
    to_grey,
    to_mnist,
)


def encoded(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def stroke_page(ink: int, paper: int, dtype=np.uint8, shape=(120, 90)) -> np.ndarray:
    """A vertical stroke of value ``ink`` on a page of value ``paper``."""
    page = np.full(shape, paper, dtype)
    page[15:105, 40:52] = ink
    return page


def assert_centred_stroke(image: np.ndarray) -> None:
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert image.max() == 255
    assert image[:, :8].max() == 0 and image[:, -8:].max() == 0  # the page is black, as in MNIST


def test_upload_extensions_match_the_decoded_formats():
    assert set(FORMATS) == {"PNG", "JPEG", "BMP", "WEBP", "GIF"}
    assert UPLOAD_EXTENSIONS == ("png", "jpg", "jpeg", "bmp", "webp", "gif")


@pytest.mark.parametrize(("ink", "paper"), [(1000, 60000), (60000, 1000), (40, 4000)])
def test_a_16_bit_grey_png_is_scaled_by_its_range_not_clipped(ink, paper):
    img = Image.fromarray(stroke_page(ink, paper, np.uint16))
    assert Image.open(io.BytesIO(encoded(img))).mode == "I;16"
    display, image = prepare_upload(encoded(img))
    assert display.dtype == np.uint8 and display.shape == (120, 90)  # what the page shows: 8-bit grey
    assert display[60, 45] == 255 and display[0, 0] == 0  # white ink on black, whichever way it came
    assert_centred_stroke(image)


def test_32_bit_and_float_images_are_scaled_by_their_range():
    for mode, page in (("I", stroke_page(-5, 70000, np.int32)), ("F", stroke_page(0.25, -3.5, np.float32))):
        img = Image.fromarray(page, mode)
        grey = to_grey(img)
        assert grey.dtype == np.float32 and grey.max() == 1.0 and grey[0, 0] == 0.0, mode
    nan_page = stroke_page(1.0, 0.0, np.float32)
    nan_page[0, :5] = np.nan
    assert np.isfinite(to_grey(Image.fromarray(nan_page, "F"))).all()


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "HSV", "I", "F",
                                  "I;16", "LAB", "La", "RGBa"])
def test_every_mode_becomes_white_on_black_grey(mode):
    page = Image.fromarray(stroke_page(0, 255))  # dark ink on white paper
    if mode == "LAB":  # Pillow has no converter to LAB: build it from the lightness band
        zero = Image.new("L", page.size, 128)
        img = Image.merge("LAB", (page, zero, zero))
    elif mode in ("La", "RGBa"):
        img = page.convert(mode[:-1] + "A").convert(mode)
    elif mode == "PA":
        img = page.convert("LA").convert("PA")
    else:
        img = page.convert(mode)
    assert img.mode == mode
    grey = to_grey(img)
    assert grey.dtype == np.float32 and grey.shape == (120, 90)
    assert grey[60, 45] > 0.9 and grey[0, 0] < 0.1, mode
    assert_centred_stroke(to_mnist(grey))


def test_a_transparent_canvas_takes_ink_from_the_alpha():
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[20:80, 45:55] = (0, 0, 0, 255)  # black ink on a transparent canvas
    assert_centred_stroke(prepare_drawing(rgba))
    rgba[20:80, 45:55] = (255, 255, 255, 255)
    assert_centred_stroke(prepare_drawing(rgba))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "not an image that can be read"),
        (b"this is not an image", "not an image that can be read"),
        (encoded(Image.new("RGB", (8, 8)), "TIFF"), "not an image that can be read"),
        (encoded(Image.merge("LAB", [Image.new("L", (8, 8))] * 3), "TIFF"), "not an image that can be read"),
        (encoded(Image.new("RGB", (8, 8)), "ICO"), "not an image that can be read"),
        (encoded(Image.fromarray(stroke_page(0, 255)))[:120], "damaged or truncated"),
        (encoded(Image.new("L", (64, 64), 255)), "The image is empty"),
        (encoded(Image.new("I;16", (64, 64), 40000)), "The image is empty"),
    ],
)
def test_files_that_cannot_be_inputs_raise_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        prepare_upload(data)


def test_each_advertised_format_decodes():
    img = Image.fromarray(stroke_page(0, 255)).convert("RGB")
    for fmt in FORMATS:
        assert_centred_stroke(prepare_upload(encoded(img, fmt))[1])
    cmyk = encoded(img.convert("CMYK"), "JPEG")
    assert decode_image(cmyk).mode == "CMYK"
    assert_centred_stroke(prepare_upload(cmyk)[1])


def test_a_file_over_the_limit_is_refused_saying_the_limit():
    data = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)))
    assert 4 * 2**10 < len(data) < 2**20
    with pytest.raises(ImageError, match=r"^The file is \d+ KB; the limit is 2 KB\.$"):
        prepare_upload(data, max_bytes=2 * 2**10)
    assert prepare_upload(data, max_bytes=len(data))[1].shape == (28, 28)
    with pytest.raises(ImageError, match=r"^The file is 10\.5 MB; the limit is 10\.0 MB\.$"):
        decode_image(bytes(21 * 2**19), max_bytes=10 * 2**20)


def test_decompression_bombs_are_refused_before_decoding():
    bomb = encoded(Image.new("1", (8000, 6000)))  # 48 megapixels in a few kB
    with pytest.raises(ImageError, match="too large"):
        decode_image(bomb)


@st.composite
def image_files(draw) -> bytes:
    """A small image of a random mode in an advertised format, maybe cut short or with bytes flipped."""
    mode, fmt = draw(st.sampled_from([("L", "PNG"), ("I;16", "PNG"), ("RGBA", "PNG"), ("P", "GIF"),
                                      ("RGB", "JPEG"), ("CMYK", "JPEG"), ("RGB", "BMP"), ("RGBA", "WEBP"),
                                      ("1", "BMP"), ("LA", "PNG")]))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pixels = rng.integers(0, 2**16 if mode == "I;16" else 256, (h, w), dtype=np.uint16 if mode == "I;16" else np.uint8)
    img = Image.fromarray(pixels)
    data = bytearray(encoded(img if mode == "I;16" else img.convert(mode), fmt))
    damage = draw(st.sampled_from(["none", "cut", "flip"]))
    if damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(image_files(), st.binary(max_size=256)))
def test_any_bytes_become_an_input_or_an_image_error(data):
    try:
        display, image = prepare_upload(data)
    except ImageError as exc:
        assert str(exc)
        return
    assert display.dtype == np.uint8 and display.ndim == 2
    assert image.shape == (28, 28) and image.dtype == np.uint8


def test_image_tokens_round_trip_and_reject_anything_else() -> None:
    from interp.data.images import image_from_token, image_to_token

    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    token = image_to_token(image)
    assert token.isascii() and "/" not in token and "+" not in token  # URL-safe
    assert np.array_equal(image_from_token(token), image)
    assert len(image_to_token(np.zeros((28, 28), np.uint8))) < 40  # a drawing is mostly black: short links
    import base64
    import zlib

    for bad in ["", "not-an-image!", base64.urlsafe_b64encode(zlib.compress(b"x" * 100)).decode(),
                base64.urlsafe_b64encode(b"plain bytes").decode(), "é"]:
        with pytest.raises(ImageError):
            image_from_token(bad)
    with pytest.raises(ImageError, match="28×28"):
        image_to_token(np.zeros((14, 14), np.uint8))
