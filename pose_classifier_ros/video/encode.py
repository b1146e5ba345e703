"""Encode (H, W, 3) uint8 RGB frames with explicit presentation times into a video file, with PyAV.

Used by ``make-sample-video`` (the synthetic flight), replay's ``--annotated-video`` and the benchmarks.
Presentation times are given per frame in ``TIME_BASE`` ticks (the MPEG clock), so variable frame rates
come out as written. ``lossless=True`` encodes RGB bit-exactly (libx264rgb at qp 0, stored as planar RGB):
a decoded frame equals the encoded one, byte for byte, which tests that compare a video with a bag need.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

TIME_BASE = Fraction(1, 90_000)  # the MPEG clock: integer ticks for every common frame rate
LOSSLESS_CODEC = "libx264rgb"


def available_codec(preferred: str = "libx264") -> str:
    """`preferred` when this PyAV build can encode with it, else mpeg4."""
    import av

    return preferred if preferred in av.codecs_available else "mpeg4"


class VideoEncoder:
    """Encode frames into a video file (the container follows the file's extension: .mp4, .mkv, ...).

    codec: libx264 (yuv420p, crf quality), libx265, mpeg4 or any encoder PyAV has; lossless: libx264rgb at
    qp 0 (bit-exact RGB; the codec argument is then ignored); faststart: MP4 index at the front of the file.
    Frame sizes must be even for yuv420p (not for lossless).
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        rate_hz: float,
        codec: str = "libx264",
        crf: int = 18,
        gop: int = 12,
        faststart: bool = False,
        lossless: bool = False,
    ):
        import av

        if not lossless and (width % 2 or height % 2):
            raise ValueError(f"yuv420p video needs an even width and height, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if lossless and LOSSLESS_CODEC not in av.codecs_available:
            raise ValueError(f"lossless encoding needs {LOSSLESS_CODEC}, which this PyAV build lacks")
        self.codec = LOSSLESS_CODEC if lossless else available_codec(codec)
        options = {"movflags": "faststart"} if faststart else {}
        self._container = av.open(str(self.path), mode="w", options=options)
        self._stream = self._container.add_stream(self.codec, rate=Fraction(rate_hz).limit_denominator(1001))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        self._stream.time_base = TIME_BASE
        self._stream.codec_context.time_base = TIME_BASE
        if lossless:
            self._stream.options = {"qp": "0", "preset": "veryfast", "g": str(gop)}
        elif self.codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(gop)}
        elif self.codec == "libx265":
            self._stream.options = {
                "crf": str(crf),
                "preset": "veryfast",
                "x265-params": f"keyint={gop}:log-level=error",
            }
        else:  # e.g. mpeg4, whose time base denominator must fit 16 bits: half the MPEG clock
            self._stream.codec_context.time_base = Fraction(1, 45_000)
            self._stream.codec_context.gop_size = gop
            self._stream.bit_rate = max(2_000_000, int(width * height * rate_hz * 0.4))
        self.frames = 0

    def write(self, image: np.ndarray, pts: int) -> None:
        """One (H, W, 3) uint8 RGB frame presented at `pts` (TIME_BASE ticks, increasing)."""
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = int(pts), TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent)."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["LOSSLESS_CODEC", "TIME_BASE", "VideoEncoder", "available_codec"]
