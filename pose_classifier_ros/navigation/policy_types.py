"""The policy's inputs and outputs: plain dataclasses, no ROS (``policy_msgs`` converts messages)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field


class State(enum.IntEnum):
    """Policy states; values match the constants in ``msg/PolicyState.msg``."""

    SEARCH = 0
    ORIENT = 1
    APPROACH = 2
    CAPTURE = 3
    RETREAT = 4


@dataclass
class TrackObservation:
    """One tracked animal in one frame. ``box``: (x1, y1, x2, y2) float pixels.

    label_stamp_ns: stamp of the frame the label was computed on (0 = not given: taken as fresh);
    heading_deg: the classifier's heading estimate of the track, degrees in [-180, 180), NaN = none.
    """

    track_id: str
    box: tuple[float, float, float, float]
    detection_score: float
    smoothed_label: str  # viewpoint name, "" when unknown
    is_stable: bool = True
    label_stamp_ns: int = 0
    heading_deg: float = math.nan

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    @property
    def shorter_side(self) -> float:
        return max(0.0, min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def longer_side(self) -> float:
        return max(0.0, self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def center_x(self) -> float:
        return (self.box[0] + self.box[2]) / 2


@dataclass
class PolicyFrame:
    """All tracks of one camera frame. ``stamp_ns``: capture time, int ns; width/height in pixels.

    vigilance: the latest animal-vigilance input, 0..1 (None: no such input).
    """

    stamp_ns: int
    width: int
    height: int
    tracks: list[TrackObservation] = field(default_factory=list)
    frame_id: str = ""
    vigilance: float | None = None


@dataclass
class CaptureInfo:
    """The one capture event of a target (fields as in ``msg/CaptureEvent.msg``)."""

    stamp_ns: int
    frame_id: str
    track_id: str
    viewpoint: str
    target_size_ratio: float
    reason: str  # one of CAPTURE_REASONS
    frames_to_capture: int  # frames since lock-on
    flank: str = ""  # "left" / "right" when the latest label is a side view, else ""
    target_size_px: float = 0.0  # box longer side, px


@dataclass
class PolicyOutput:
    """The policy's decision on one frame (fields as in ``msg/PolicyState.msg`` plus the capture)."""

    stamp_ns: int
    frame_id: str
    state: State
    target_track_id: str
    target_viewpoint: str
    side_votes: int
    target_size_ratio: float
    yaw_rate: float  # rad/s, REP-103 (+ = counter-clockwise)
    forward_speed: float  # m/s, body x
    steps_in_state: int  # frames in the current state, this one included
    reason: str  # why the last transition happened
    transitioned: bool = False  # a transition (or a new lock-on) happened on this frame
    target_visible: bool = False  # the target was in this frame
    capture: CaptureInfo | None = None
    lateral_speed: float = 0.0  # m/s, body y (REP-103: + = left)
    flank: str = ""  # flank being reached ("left"/"right"), "" when none chosen
    heading_deg: float = math.nan  # heading estimate used, degrees in [-180, 180), NaN = none
    target_size_px: float = 0.0  # target box longer side, px
    label_fresh: bool = False  # the target's label on this frame was known and not too old
