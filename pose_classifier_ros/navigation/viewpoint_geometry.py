"""Viewpoint headings and orbit directions: the one convention the policy and the simulator share.

Relative heading ``h`` (degrees in [-180, 180)), as in ``labels.HEADING_DEG`` and ``Viewpoint.heading_deg``:
0 = the animal faces the camera (front), +90 = its left flank faces the camera (left), -90 = its right
flank (right), 180 = it faces away (back); the 8 classes are the 45-degree sectors centred on
0, +-45, +-90, +-135, 180.

In a world frame seen from above (ENU, x east, y north, angles counter-clockwise):

    h = wrap(bearing_from_animal_to_camera - animal_heading)

so ``h`` grows when the camera circles the animal counter-clockwise (or the animal turns clockwise,
to its right). A drone that keeps the animal centred circles it counter-clockwise by flying to its
right (``linear.y < 0``, REP-103) while yawing left (``angular.z > 0``): orbit direction +1 means
"increase h", which is a positive yaw rate and a negative lateral velocity.
"""

from __future__ import annotations

import math

from ..labels import HEADING_DEG, NUM_CLASSES, VIEWPOINTS

SIDE_HEADING_DEG = {"left": 90.0, "right": -90.0}
SECTOR_DEG = 360.0 / NUM_CLASSES


def wrap_deg(angle: float) -> float:
    """Angle in degrees wrapped to [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


# Class name -> nominal heading in [-180, 180).
LABEL_HEADING_DEG: dict[str, float] = {name: wrap_deg(HEADING_DEG[i]) for i, name in enumerate(VIEWPOINTS)}
_BY_SECTOR = {round(wrap_deg(h) / SECTOR_DEG) % NUM_CLASSES: i for i, h in enumerate(HEADING_DEG)}


def class_of_heading(heading_deg: float) -> int:
    """Class index (labels.VIEWPOINTS order) whose 45-degree sector contains `heading_deg`."""
    return _BY_SECTOR[round(wrap_deg(heading_deg) / SECTOR_DEG) % NUM_CLASSES]


def heading_error_deg(heading_deg: float, flank: str) -> float:
    """Signed change of h, degrees in [-180, 180), that brings `flank` ("left"/"right") to the camera."""
    return wrap_deg(SIDE_HEADING_DEG[flank] - heading_deg)


def nearest_flank(heading_deg: float, current: str = "", margin_deg: float = 0.0) -> str:
    """The flank reached the short way round from `heading_deg`.

    With `current` set, switch away from it only when the other flank is nearer by more than `margin_deg`
    (hysteresis: front and back views, exactly between the flanks, keep the current choice).
    """
    errors = {f: abs(heading_error_deg(heading_deg, f)) for f in SIDE_HEADING_DEG}
    best = min(errors, key=errors.get)
    if current in errors and errors[current] - errors[best] <= margin_deg:
        return current
    return best


def bearing_deg(from_xy: tuple[float, float], to_xy: tuple[float, float]) -> float:
    """Direction from `from_xy` to `to_xy`, degrees counter-clockwise from +x, in [-180, 180)."""
    return wrap_deg(math.degrees(math.atan2(to_xy[1] - from_xy[1], to_xy[0] - from_xy[0])))


def relative_heading_deg(
    animal_xy: tuple[float, float], animal_heading_deg: float, camera_xy: tuple[float, float]
) -> float:
    """h of an animal at `animal_xy` facing `animal_heading_deg` (world, CCW from +x) seen from `camera_xy`."""
    return wrap_deg(bearing_deg(animal_xy, camera_xy) - animal_heading_deg)
