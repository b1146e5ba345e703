"""image_codec: every ROS encoding to RGB, row padding, bad step/short data, JPEG/PNG."""

import array

import numpy as np
import pytest

from pose_classifier_ros.stream.image_codec import (
    SUPPORTED_ENCODINGS,
    UnsupportedEncodingError,
    decode_compressed,
    encode_compressed,
    encode_rgb,
    to_rgb_uint8,
)

H, W = 12, 16


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def smooth():
    """A smooth colour image: demosaicing and chroma subsampling are near-exact on it."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    r = 40 + 10 * x
    g = 30 + 8 * y + 4 * x
    b = 220 - 6 * x - 5 * y
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def _luma(rgb):
    return np.clip(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16"])
@pytest.mark.parametrize("padding", [0, 5])
def test_colour_encodings_exact(noise, encoding, padding):
    data, step = encode_rgb(noise, encoding, row_padding=padding)
    bpp = (4 if "a" in encoding[3:] else 3) * (2 if encoding.endswith("16") else 1)
    assert step == W * bpp + padding
    out = to_rgb_uint8(encoding, H, W, step, data)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, noise)


def test_bgr_is_really_swapped(noise):
    # The same bytes read as rgb8 must give the channels reversed: catches a "BGR fed as RGB" bug.
    data, step = encode_rgb(noise, "bgr8")
    np.testing.assert_array_equal(to_rgb_uint8("rgb8", H, W, step, data), noise[..., ::-1])


def test_alpha_dropped_not_mixed(noise):
    data, step = encode_rgb(noise, "rgba8")
    raw = np.frombuffer(data, np.uint8).reshape(H, W, 4).copy()
    raw[..., 3] = 7  # alpha must not leak into any colour channel
    np.testing.assert_array_equal(to_rgb_uint8("rgba8", H, W, step, raw.tobytes()), noise)


@pytest.mark.parametrize("container", [bytes, bytearray, memoryview, "array", "numpy", "list"])
def test_data_containers(noise, container):
    data, step = encode_rgb(noise, "rgb8", row_padding=3)
    wrapped = {
        "array": lambda d: array.array("B", d),
        "numpy": lambda d: np.frombuffer(d, np.uint8).copy(),
        "list": lambda d: list(d),
    }.get(container, container)(data)
    out = to_rgb_uint8("rgb8", H, W, step, wrapped)
    np.testing.assert_array_equal(out, noise)
    assert out.flags.writeable and out.flags.c_contiguous


def test_output_does_not_alias_message_buffer(noise):
    buf = bytearray(encode_rgb(noise, "rgb8")[0])
    out = to_rgb_uint8("rgb8", H, W, W * 3, buf)
    buf[0] ^= 0xFF
    assert out[0, 0, 0] == noise[0, 0, 0]


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_replicated(noise, encoding):
    data, step = encode_rgb(noise, "mono8", row_padding=2)
    out = to_rgb_uint8(encoding, H, W, step, data)
    gray = _luma(noise)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


@pytest.mark.parametrize("big", [False, True])
def test_mono16_scaled_and_endianness(big):
    values = np.array([[0, 255, 256, 4095], [32768, 65280, 65535, 1000]], np.uint16)
    data = values.astype(">u2" if big else "<u2").tobytes()
    out = to_rgb_uint8("mono16", 2, 4, 8, data, is_bigendian=big)
    np.testing.assert_array_equal(out[..., 0], values >> 8)
    np.testing.assert_array_equal(out[..., 2], values >> 8)
    # Reading with the wrong byte order gives a different picture: the flag is honoured.
    wrong = to_rgb_uint8("mono16", 2, 4, 8, data, is_bigendian=not big)
    assert not np.array_equal(wrong, out)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_demosaic(smooth, noise, pattern, bits):
    enc = f"bayer_{pattern}{bits}"
    data, step = encode_rgb(smooth, enc, row_padding=4)
    out = to_rgb_uint8(enc, H, W, step, data)
    assert out.shape == (H, W, 3)
    # Bilinear interpolation is exact (to rounding) on a linear ramp away from the border.
    assert np.abs(out.astype(int) - smooth)[1:-1, 1:-1].max() <= 1
    assert np.abs(out.astype(int) - smooth).max() <= 16
    # Measured sites are kept exactly, whatever the image.
    data, step = encode_rgb(noise, enc)
    out = to_rgb_uint8(enc, H, W, step, data)
    site = {c: [i for i, ch in enumerate(pattern) if ch == c] for c in "rgb"}
    for ch, colour in enumerate("rgb"):
        for s in site[colour]:
            dy, dx = divmod(s, 2)
            np.testing.assert_array_equal(out[dy::2, dx::2, ch], noise[dy::2, dx::2, ch])


def test_bayer_wrong_pattern_gives_wrong_colours(smooth):
    data, step = encode_rgb(smooth, "bayer_rggb8")
    out = to_rgb_uint8("bayer_bggr8", H, W, step, data)
    assert np.abs(out.astype(int) - smooth)[1:-1, 1:-1].mean() > 20


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuyv", "yuv422_yuy2"])
def test_yuv422(smooth, encoding):
    data, step = encode_rgb(smooth, encoding, row_padding=6)
    assert step == W * 2 + 6
    out = to_rgb_uint8(encoding, H, W, step, data)
    # Chroma is shared by pixel pairs; the ramp changes little between neighbours.
    assert np.abs(out.astype(int) - smooth).max() <= 12


def test_yuv_variants_differ(smooth):
    data, step = encode_rgb(smooth, "uyvy")
    assert np.abs(to_rgb_uint8("yuyv", H, W, step, data).astype(int) - smooth).mean() > 20


def test_every_supported_encoding_round_trips(smooth):
    for enc in SUPPORTED_ENCODINGS:
        data, step = encode_rgb(smooth, enc, row_padding=1)
        out = to_rgb_uint8(enc, H, W, step, data)
        assert out.shape == (H, W, 3) and out.dtype == np.uint8, enc


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_rejected(encoding):
    with pytest.raises(UnsupportedEncodingError, match="depth image, not a camera image"):
        to_rgb_uint8(encoding, 2, 2, 8, bytes(16))


def test_unknown_and_generic_rejected():
    with pytest.raises(UnsupportedEncodingError, match="unsupported image encoding 'weird42'"):
        to_rgb_uint8("weird42", 2, 2, 6, bytes(12))
    with pytest.raises(UnsupportedEncodingError, match="channel order"):
        to_rgb_uint8("8UC3", 2, 2, 6, bytes(12))
    assert issubclass(UnsupportedEncodingError, ValueError)


def test_step_too_small_rejected():
    with pytest.raises(UnsupportedEncodingError, match="step 5 is smaller than width x bytes per pixel = 6"):
        to_rgb_uint8("rgb8", 2, 2, 5, bytes(12))


def test_short_data_rejected():
    with pytest.raises(UnsupportedEncodingError, match="image data is 11 bytes, expected 12"):
        to_rgb_uint8("rgb8", 2, 2, 6, bytes(11))
    with pytest.raises(UnsupportedEncodingError, match="no pixels"):
        to_rgb_uint8("rgb8", 0, 2, 6, b"")


def test_last_row_padding_may_be_missing(noise):
    data, step = encode_rgb(noise, "rgb8", row_padding=4)
    out = to_rgb_uint8("rgb8", H, W, step, data[:-4])
    np.testing.assert_array_equal(out, noise)


def test_odd_width_yuv_rejected():
    with pytest.raises(UnsupportedEncodingError, match="even width"):
        to_rgb_uint8("yuyv", 1, 3, 6, bytes(6))


@pytest.fixture(scope="module")
def photo():
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    img = np.stack([x * 4, y * 5, 255 - x * 3], -1)
    img[10:30, 20:40] = (250, 30, 30)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["png", "rgb8; png compressed bgr8"])
def test_png_round_trip_exact(photo, fmt):
    np.testing.assert_array_equal(decode_compressed(fmt, encode_compressed(photo, "png")), photo)


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8"])
def test_jpeg_round_trip_close(photo, fmt):
    data = encode_compressed(photo, "jpeg", quality=95)
    out = decode_compressed(fmt, array.array("B", data))
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - photo).mean() < 4
    # Colours stay in RGB order: the red square is red.
    assert out[20, 30, 0] > 200 and out[20, 30, 1] < 80


def test_png_16bit_mono():
    from io import BytesIO

    from PIL import Image

    values = np.array([[0, 4096, 65535]], np.uint16)
    buf = BytesIO()
    Image.fromarray(values).save(buf, format="PNG")
    out = decode_compressed("mono16; png compressed mono16", buf.getvalue())
    np.testing.assert_array_equal(out[0, :, 1], values[0] >> 8)


def test_compressed_errors():
    with pytest.raises(UnsupportedEncodingError, match="cannot decode compressed image"):
        decode_compressed("jpeg", b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(UnsupportedEncodingError, match="no data"):
        decode_compressed("jpeg", b"")
    with pytest.raises(UnsupportedEncodingError, match="depth"):
        decode_compressed("16UC1; compressedDepth png", b"\x89PNG")


def test_encode_rejects_bad_input():
    with pytest.raises(ValueError):
        encode_rgb(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ValueError):
        encode_compressed(np.zeros((2, 2, 3), np.uint8), "bmp")
