"""ROS image encodings <-> (H, W, 3) uint8 RGB numpy arrays, with numpy and PIL only (no cv_bridge).

`data` may be bytes, bytearray, memoryview, array.array or a numpy array: what rclpy and rosbags
give for `sensor_msgs/Image.data`. Rows may be padded (`step` > width * bytes per pixel).
The RGB array returned is always a fresh, writable, C-contiguous copy.
"""

from __future__ import annotations

import io

import numpy as np


class UnsupportedEncodingError(ValueError):
    """An image that cannot be turned into RGB: unknown/depth encoding, bad step, short or corrupt data."""


# encoding -> (channels, bytes per channel) of packed pixel formats
_PACKED = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "8uc1": (1, 1),
    "mono16": (1, 2),
    "rgb16": (3, 2),
    "bgr16": (3, 2),
    "rgba16": (4, 2),
    "bgra16": (4, 2),
}
_BAYER = ("rggb", "bggr", "gbrg", "grbg")
_YUV422 = {"yuv422": "uyvy", "uyvy": "uyvy", "yuv422_uyvy": "uyvy", "yuyv": "yuyv", "yuv422_yuy2": "yuyv"}
_DEPTH = ("16uc1", "32fc1", "16sc1", "32sc1", "64fc1", "8sc1", "8uc2", "16uc2", "32fc2")
_GENERIC = ("8uc3", "8uc4", "16uc3", "16uc4", "32fc3", "32fc4")

SUPPORTED_ENCODINGS = tuple(
    sorted([e for e in _PACKED if e != "8uc1"] + [f"bayer_{p}{b}" for p in _BAYER for b in (8, 16)] + list(_YUV422))
)


def _as_uint8_buffer(data) -> np.ndarray:
    """Flat uint8 view of message data without copying where possible."""
    if isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data)
        return arr.reshape(-1).view(np.uint8) if arr.dtype != np.uint8 else arr.reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:  # e.g. a list of ints
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _rows(buf: np.ndarray, height: int, step: int, row_bytes: int) -> np.ndarray:
    """(height, row_bytes) uint8 view of the image rows, padding skipped."""
    if step < row_bytes:
        raise UnsupportedEncodingError(f"step {step} is smaller than width x bytes per pixel = {row_bytes}")
    needed = step * (height - 1) + row_bytes if height else 0
    if buf.size < needed:
        raise UnsupportedEncodingError(
            f"image data is {buf.size} bytes, expected {step * height} (height {height} x step {step})"
        )
    if buf.size < step * height:  # last row's padding left out: tolerate by padding a copy
        buf = np.concatenate([buf, np.zeros(step * height - buf.size, np.uint8)])
    return buf[: step * height].reshape(height, step)[:, :row_bytes]


def _to8(values16: np.ndarray) -> np.ndarray:
    # Fixed full-range scaling (as cv_bridge does), not per-frame min/max, so brightness does not flicker.
    return (values16 >> 8).astype(np.uint8)


def _yuv422_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:2 -> RGB uint8. y: (H, W); u, v: (H, W/2), shared by pixel pairs.

    Integer arithmetic (the usual 8-bit fixed-point coefficients); chroma terms are computed once
    per pixel pair.
    """
    h, w = y.shape
    c = (y.astype(np.int32) - 16) * 298 + 128
    d = u.astype(np.int32) - 128
    e = v.astype(np.int32) - 128
    terms = (409 * e, -100 * d - 208 * e, 516 * d)  # (H, W/2) each: R, G, B chroma contributions
    out = np.empty((h, w, 3), np.uint8)
    c_pairs = c.reshape(h, w // 2, 2)
    for ch, term in enumerate(terms):
        val = c_pairs + term[..., None]
        val >>= 8
        np.clip(val, 0, 255, out=val)
        out[..., ch] = val.reshape(h, w)
    return out


def _bayer_masks(pattern: str, height: int, width: int):
    """Boolean (H, W) masks of the R, G and B sites of a 2x2 Bayer pattern such as "rggb"."""
    yy, xx = np.mgrid[0:height, 0:width]
    site = (yy % 2) * 2 + (xx % 2)  # 0 1 / 2 3 within each 2x2 cell
    return tuple(np.isin(site, [i for i, ch in enumerate(pattern) if ch == c]) for c in "rgb")


def demosaic_bilinear(raw: np.ndarray, pattern: str) -> np.ndarray:
    """Bilinear demosaic of an (H, W) uint8 Bayer mosaic -> (H, W, 3) uint8 RGB.

    pattern: the 2x2 cell read row by row, e.g. "rggb". Measured samples are kept exactly; each missing
    one is the rounded mean of its nearest same-colour neighbours (2 or 4). Borders are mirrored, which
    keeps the colour parity, so border pixels use the neighbours that exist. Works on the four
    sub-lattices with strided slices: no per-pixel Python, no full-image convolutions.
    """
    raw = np.asarray(raw, dtype=np.uint8)
    h, w = raw.shape
    if h < 2 or w < 2:
        raise UnsupportedEncodingError(f"a Bayer image needs at least 2x2 pixels, got {w}x{h}")
    padded = np.pad(raw, 1, mode="reflect").astype(np.uint16)
    out = np.empty((h, w, 3), np.uint8)
    channel = {"r": 0, "g": 1, "b": 2}

    for sy in (0, 1):
        for sx in (0, 1):
            if sy >= h or sx >= w:
                continue

            def at(dy, dx, sy=sy, sx=sx):
                # Samples at offset (dy, dx) from every site of this sub-lattice.
                return padded[1 + sy + dy : 1 + dy + h : 2, 1 + sx + dx : 1 + dx + w : 2]

            colour = pattern[sy * 2 + sx]
            dst = out[sy::2, sx::2]
            dst[..., channel[colour]] = at(0, 0)
            if colour == "g":
                horizontal = pattern[sy * 2 + (1 - sx)]  # colour of the left/right neighbours
                vertical = pattern[(1 - sy) * 2 + sx]
                dst[..., channel[horizontal]] = (at(0, -1) + at(0, 1) + 1) >> 1
                dst[..., channel[vertical]] = (at(-1, 0) + at(1, 0) + 1) >> 1
            else:
                other = "b" if colour == "r" else "r"
                dst[..., 1] = (at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1) + 2) >> 2
                dst[..., channel[other]] = (at(-1, -1) + at(-1, 1) + at(1, -1) + at(1, 1) + 2) >> 2
    return out


def to_rgb_uint8(encoding: str, height: int, width: int, step: int, data, is_bigendian=False) -> np.ndarray:
    """Decode raw `sensor_msgs/Image` fields into an (H, W, 3) uint8 RGB array.

    Raises UnsupportedEncodingError for depth/unknown encodings, a step too small or data too short.
    """
    enc = str(encoding).strip().lower()
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise UnsupportedEncodingError(f"image has no pixels ({width}x{height})")
    if enc in _DEPTH:
        raise UnsupportedEncodingError(
            f"encoding {encoding!r} is a depth image, not a camera image; subscribe to the colour image topic"
        )
    if enc in _GENERIC:
        raise UnsupportedEncodingError(
            f"encoding {encoding!r} does not say its channel order; publish rgb8/bgr8 instead"
        )
    buf = _as_uint8_buffer(data)
    big = bool(is_bigendian)
    u16 = np.dtype(">u2" if big else "<u2")

    if enc in _PACKED:
        channels, depth = _PACKED[enc]
        rows = _rows(buf, height, step, width * channels * depth)
        if depth == 2:
            pix = _to8(np.ascontiguousarray(rows).view(u16).astype(np.uint16))
        else:
            pix = rows
        pix = pix.reshape(height, width, channels)
        if channels == 1:
            return np.repeat(pix, 3, axis=2)
        if enc in ("rgb8", "rgb16"):
            return np.array(pix, order="C")  # row-wise memcpy: the fast path
        # Channel by channel into a fresh array: several times faster than copying a reversed/strided view.
        out = np.empty((height, width, 3), np.uint8)
        order = (2, 1, 0) if enc.startswith("bgr") else (0, 1, 2)
        for ch, src in enumerate(order):
            out[..., ch] = pix[..., src]
        return out

    if enc.startswith("bayer_"):
        pattern, bits = enc[6:10], enc[10:]
        if pattern not in _BAYER or bits not in ("8", "16"):
            raise UnsupportedEncodingError(f"unknown Bayer encoding {encoding!r}")
        if bits == "8":
            raw = _rows(buf, height, step, width).reshape(height, width)
        else:
            raw = _to8(np.ascontiguousarray(_rows(buf, height, step, width * 2)).view(u16).astype(np.uint16))
        return demosaic_bilinear(raw, pattern)

    if enc in _YUV422:
        if width % 2:
            raise UnsupportedEncodingError(f"{encoding} needs an even width, got {width}")
        quads = _rows(buf, height, step, width * 2).reshape(height, width // 2, 4)
        if _YUV422[enc] == "uyvy":
            u, y0, v, y1 = (quads[..., i] for i in range(4))
        else:
            y0, u, y1, v = (quads[..., i] for i in range(4))
        y = np.stack([y0, y1], axis=-1).reshape(height, width)
        return _yuv422_to_rgb(y, u, v)

    raise UnsupportedEncodingError(
        f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
    )


def decode_compressed(format: str, data) -> np.ndarray:  # `format`: the message field's name
    """Decode `sensor_msgs/CompressedImage` (JPEG/PNG) into (H, W, 3) uint8 RGB.

    `format` as image_transport writes it: "jpeg", "png", "rgb8; jpeg compressed bgr8", ...
    Raises UnsupportedEncodingError for compressedDepth or undecodable data.
    """
    fmt = str(format).strip().lower()
    if "compresseddepth" in fmt or fmt.split(";")[0].strip() in _DEPTH:
        raise UnsupportedEncodingError(f"compressed format {format!r} is a depth image, not a camera image")
    raw = _as_uint8_buffer(data).tobytes()
    if not raw:
        raise UnsupportedEncodingError(f"compressed image ({format!r}) has no data")
    from PIL import Image  # local: PIL is only needed for compressed transport

    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit mono PNG
                values = np.asarray(img).astype(np.int64)
                gray = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # PIL raises OSError, SyntaxError, DecompressionBombError, ...
        raise UnsupportedEncodingError(
            f"cannot decode compressed image (format {format!r}, {len(raw)} bytes): {exc}"
        ) from None


def encode_rgb(rgb: np.ndarray, encoding: str, row_padding: int = 0, is_bigendian: bool = False) -> tuple[bytes, int]:
    """Encode (H, W, 3) uint8 RGB as raw `Image.data` in `encoding`; returns (data, step).

    For tests and the synthetic bag. Mono encodings store BT.601 luma; alpha is 255; Bayer keeps
    each site's own colour; yuv422/uyvy/yuyv average the chroma of each pixel pair.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    enc = encoding.strip().lower()
    h, w, _ = rgb.shape
    rgbf = rgb.astype(np.float32)
    luma = np.clip(rgbf @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5, 0, 255).astype(np.uint8)
    u16 = np.dtype(">u2" if is_bigendian else "<u2")
    if enc in ("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16"):
        pix = rgb[..., ::-1] if enc.startswith("bgr") else rgb
        if _PACKED[enc][0] == 4:
            pix = np.concatenate([pix, np.full((h, w, 1), 255, np.uint8)], axis=2)
        rows = np.ascontiguousarray(pix).reshape(h, -1)
        if enc.endswith("16"):
            rows = (rows.astype(np.uint16) * 257).astype(u16).view(np.uint8).reshape(h, -1)
    elif enc in ("mono8", "8uc1"):
        rows = luma
    elif enc == "mono16":
        rows = (luma.astype(np.uint16) * 257).astype(u16).view(np.uint8).reshape(h, -1)
    elif enc.startswith("bayer_") and enc[6:10] in _BAYER and enc[10:] in ("8", "16"):
        masks = _bayer_masks(enc[6:10], h, w)
        raw = np.zeros((h, w), np.uint8)
        for ch, mask in enumerate(masks):
            raw[mask] = rgb[..., ch][mask]
        rows = raw if enc.endswith("8") else (raw.astype(np.uint16) * 257).astype(u16).view(np.uint8).reshape(h, -1)
    elif enc in _YUV422:
        if w % 2:
            raise ValueError(f"{encoding} needs an even width, got {w}")
        r, g, b = rgbf[..., 0], rgbf[..., 1], rgbf[..., 2]
        y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
        u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
        v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
        u = u.reshape(h, w // 2, 2).mean(axis=2)
        v = v.reshape(h, w // 2, 2).mean(axis=2)
        y = y.reshape(h, w // 2, 2)
        order = (u, y[..., 0], v, y[..., 1]) if _YUV422[enc] == "uyvy" else (y[..., 0], u, y[..., 1], v)
        rows = np.clip(np.stack(order, axis=-1) + 0.5, 0, 255).astype(np.uint8).reshape(h, -1)
    else:
        raise UnsupportedEncodingError(f"encode_rgb does not support encoding {encoding!r}")
    if row_padding:
        rows = np.concatenate([rows, np.zeros((h, int(row_padding)), np.uint8)], axis=1)
    rows = np.ascontiguousarray(rows)
    return rows.tobytes(), int(rows.shape[1])


def encode_compressed(rgb: np.ndarray, format: str = "jpeg", quality: int = 90) -> bytes:
    """Encode (H, W, 3) uint8 RGB as JPEG or PNG bytes (`CompressedImage.data`)."""
    from PIL import Image

    fmt = format.strip().lower()
    fmt = {"jpg": "jpeg"}.get(fmt, fmt)
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"encode_compressed supports 'jpeg' and 'png', got {format!r}")
    buf = io.BytesIO()
    kwargs = {"quality": int(quality)} if fmt == "jpeg" else {}
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, format=fmt.upper(), **kwargs)
    return buf.getvalue()


__all__ = (
    "UnsupportedEncodingError",
    "to_rgb_uint8",
    "decode_compressed",
    "encode_rgb",
    "encode_compressed",
    "SUPPORTED_ENCODINGS",
    "demosaic_bilinear",
)
