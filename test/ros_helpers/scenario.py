"""Scripted camera + detector stream for the node tests, and what the node must publish for it.

Frames are 320x240 (small enough for Fast DDS shared memory, whose default segment is 512 KB), stamped 1000 s + 0.1 s * i, frame_id "cam_optical". Labels are set through the
colour of each box (see colour_model). The stream holds several tracks (detector ids and one without
id), a track whose per-frame label flickers, boxes partly and fully outside the frame, empty frames,
bgra8 and mono8 frames, an undecodable encoding, a frame without detections message, a detections
message without frame and one frame whose detections arrive before the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH, HEIGHT, FRAME_ID = 320, 240, "cam_optical"
BASE_NS = 1000 * 10**9
PERIOD_NS = 100_000_000
FLICKER = {2, 6, 11}  # frames where elk-1 shows "right" instead of "left"


@dataclass
class Box:
    track_id: str  # "" = the detector sets no id (the node assigns "iou-<n>")
    xyxy: tuple  # pixels
    label: str  # colour drawn in the box = per-frame label the test model predicts
    inside: bool = True  # False: entirely outside the frame, the pipeline skips it


@dataclass
class Frame:
    index: int
    stamp_ns: int
    encoding: str = "rgb8"
    boxes: list[Box] = field(default_factory=list)
    send_detections: bool = True
    detections_first: bool = False

    @property
    def expect_output(self) -> bool:
        return self.send_detections and self.encoding in ("rgb8", "bgr8", "bgra8", "mono8")


def main_scenario() -> tuple[list[Frame], list[int]]:
    """(frames, stamps of detection messages that match no frame)."""
    frames = []
    for i in range(16):
        f = Frame(i, BASE_NS + i * PERIOD_NS)
        if i in (3, 13):
            frames.append(f)  # empty Detection2DArray -> empty ViewpointArray
            continue
        if i == 7:
            f.encoding = "mono8"  # luma only: white box -> "back", black box -> "front"
            f.boxes = [Box("mono-1", (40, 60, 100, 120), "back"), Box("mono-2", (180, 60, 240, 120), "front")]
            frames.append(f)
            continue
        f.boxes = [
            Box("elk-1", (20 + 4 * i, 40, 90 + 4 * i, 110), "right" if i in FLICKER else "left"),
            Box("deer-2", (200, 130, 280, 200), "back"),
            Box("", (110 + i, 160, 160 + i, 220), "front-right"),
            Box("gone-4", (330, 250, 380, 300), "front", inside=False),
        ]
        if i % 2 == 0:
            f.boxes.append(Box("edge-3", (-30, 150, 40, 220), "right"))  # partly outside: clamped, classified
        if i == 4:
            f.encoding = "bgra8"
        if i == 8:
            f.encoding = "weird16"  # unknown encoding: logged, counted, nothing published
        if i == 10:
            f.send_detections = False  # the detector skipped this frame: nothing to pair
        if i == 12:
            f.detections_first = True
        frames.append(f)
    orphan_detections = [BASE_NS + 9 * PERIOD_NS + PERIOD_NS // 2]  # between frames 9 and 10
    return frames, orphan_detections


def zero_stamp_scenario(n: int = 6) -> tuple[list[Frame], list[int]]:
    """A camera and detector that never set header.stamp."""
    return [Frame(i, 0, boxes=[Box("elk-1", (100, 100, 200, 200), "left")]) for i in range(n)], []


def sec_nanosec(stamp_ns: int) -> list[int]:
    """A stamp as the recorder scripts write it to JSON: [sec, nanosec]."""
    return list(divmod(stamp_ns, 10**9))
