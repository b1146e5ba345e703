"""A small renderer of zebra-like and giraffe-like animals seen obliquely from above.

Animals are built from shaded spheres with a z-buffer: striped (zebra-like) or patched (giraffe-like)
texture, on a textured savannah ground. The viewpoint is visible: the head leads the body in the
facing direction, "left" and "right" are mirror images, a front view shows the face over the chest, a
back view the tail over the rump. Headings follow labels.py: degrees counter-clockwise from "facing
the camera" (0 front, 90 facing image-left, 180 back, 270 facing image-right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from pose_classifier_ros.labels import HEADING_DEG

SPECIES = ("zebra", "giraffe")


def heading_to_class(heading_deg: float) -> int:
    """Index of the viewpoint class whose nominal heading is nearest to ``heading_deg``."""
    diff = np.abs((np.asarray(HEADING_DEG) - heading_deg + 180.0) % 360.0 - 180.0)
    return int(np.argmin(diff))


# ---------------------------------------------------------------------------------------------
# Animal models: spheres in the animal's frame (u forward, v up, w lateral), in metres.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sphere:
    u: float
    v: float
    w: float
    r: float
    part: str  # body, leg, neck, head, muzzle, ear, eye, horn, tail, tuft, hoof


def _chain(a, b, r0, r1, n, part) -> list[Sphere]:
    return [
        Sphere(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t, r0 + (r1 - r0) * t, part)
        for t in np.linspace(0.0, 1.0, n)
    ]


def _quadruped(
    body_v, body_len, body_r, leg_w, neck_a, neck_b, neck_r, head, muzzle, tail_a, tail_b, horn: bool
) -> tuple[Sphere, ...]:
    s: list[Sphere] = []
    s += _chain((-body_len / 2, body_v, 0), (body_len / 2, body_v + 0.05, 0), body_r * 0.92, body_r, 9, "body")
    for du in (-body_len / 2 + 0.1, body_len / 2 - 0.1):
        for dw in (-leg_w, leg_w):
            s += _chain((du, body_v - body_r * 0.5, dw), (du, 0.12, dw), 0.1, 0.07, 8, "leg")
            s.append(Sphere(du, 0.06, dw, 0.075, "hoof"))
    s += _chain(neck_a, neck_b, neck_r, neck_r * 0.75, 7, "neck")
    hu, hv = head
    s.append(Sphere(hu, hv, 0, 0.17, "head"))
    s += _chain((hu + 0.08, hv - 0.03, 0), (muzzle[0], muzzle[1], 0), 0.13, 0.1, 4, "muzzle")
    for dw in (-0.09, 0.09):
        s.append(Sphere(hu - 0.05, hv + 0.17, dw, 0.06, "ear"))
        s.append(Sphere(hu + 0.06, hv + 0.04, dw * 1.55, 0.04, "eye"))
        if horn:
            s.append(Sphere(hu - 0.02, hv + 0.22, dw * 0.6, 0.05, "horn"))
    s += _chain(tail_a, tail_b, 0.05, 0.035, 6, "tail")
    s.append(Sphere(tail_b[0], tail_b[1] - 0.05, 0, 0.08, "tuft"))
    return tuple(s)


MODELS: dict[str, tuple[Sphere, ...]] = {
    "zebra": _quadruped(
        body_v=1.0,
        body_len=1.5,
        body_r=0.36,
        leg_w=0.17,
        neck_a=(0.72, 1.12, 0),
        neck_b=(1.02, 1.55, 0),
        neck_r=0.2,
        head=(1.12, 1.6),
        muzzle=(1.42, 1.34),
        tail_a=(-0.95, 1.12, 0),
        tail_b=(-1.1, 0.62, 0),
        horn=False,
    ),
    "giraffe": _quadruped(
        body_v=1.75,
        body_len=1.3,
        body_r=0.4,
        leg_w=0.2,
        neck_a=(0.6, 2.0, 0),
        neck_b=(1.1, 3.25, 0),
        neck_r=0.19,
        head=(1.2, 3.35),
        muzzle=(1.5, 3.15),
        tail_a=(-0.82, 1.85, 0),
        tail_b=(-0.95, 1.1, 0),
        horn=True,
    ),
}


def _hash2(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) per integer cell."""
    h = (ix.astype(np.int64) * 374761393 + iy.astype(np.int64) * 668265263 + seed * 2147483647) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    return (h & 0xFFFF) / 65536.0


def _albedo(species: str, part: str, u, v, w, seed: int) -> np.ndarray:
    """(M, 3) float RGB in 0..1 of surface points (u, v, w) of one part."""
    n = u.shape[0]
    if species == "zebra":
        if part in ("eye", "hoof", "tuft", "muzzle"):
            return np.tile([0.06, 0.05, 0.05], (n, 1))
        if part == "ear":
            return np.tile([0.85, 0.85, 0.82], (n, 1))
        # Stripes wrap around the body and neck, ring the legs; phase varies per animal.
        coord = {"leg": v * 7.0, "neck": v * 5.0 + u * 2.5}.get(part, u * 3.6 + v * 1.4)
        stripe = np.sin(2 * np.pi * coord + 0.6 * np.sin(4.0 * w) + seed % 7) > 0.1
        white = np.array([0.93, 0.92, 0.88])
        black = np.array([0.07, 0.07, 0.08])
        return np.where(stripe[:, None], black, white)
    # giraffe: brown polygons separated by cream lines
    if part in ("eye", "hoof", "tuft", "horn"):
        return np.tile([0.12, 0.08, 0.05], (n, 1))
    if part in ("muzzle", "ear"):
        return np.tile([0.9, 0.82, 0.64], (n, 1))
    scale = 4.5 if part != "leg" else 7.0
    px, py = (u + 0.7 * w) * scale, v * scale
    ix, iy = np.floor(px), np.floor(py)
    best = np.full(n, 9.0)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            cx, cy = ix + dx, iy + dy
            jx = cx + 0.2 + 0.6 * _hash2(cx, cy, seed)
            jy = cy + 0.2 + 0.6 * _hash2(cy, cx, seed + 1)
            best = np.minimum(best, np.hypot(px - jx, py - jy))
    brown = np.array([0.58, 0.33, 0.12])
    cream = np.array([0.94, 0.86, 0.66])
    return np.where((best < 0.42)[:, None], brown, cream)


@dataclass
class Animal:
    """One animal to draw: ground point (x, y) in image pixels, pixels per metre, heading in degrees."""

    species: str
    x: float
    y: float
    heading_deg: float
    scale: float
    seed: int = 0


def render_animal(
    image: np.ndarray, animal: Animal, elevation_deg: float = 40.0, shadow: bool = True
) -> np.ndarray | None:
    """Draw ``animal`` into ``image`` ((H, W, 3) uint8, in place), z-buffered and Lambert-shaded.

    Returns the visible box ``(4,) float32 xyxy`` pixels (clipped to the image; x2/y2 exclusive),
    or None when no pixel of the animal is inside the image.
    """
    height, width = image.shape[:2]
    h = math.radians(animal.heading_deg)
    e = math.radians(elevation_deg)
    # World: x image-right, y up, z away from the camera. Forward f for heading 0 faces the camera.
    fwd = np.array([-math.sin(h), 0.0, -math.cos(h)])
    lat = np.array([-math.cos(h), 0.0, math.sin(h)])
    up = np.array([0.0, 1.0, 0.0])
    view = np.array([0.0, -math.sin(e), math.cos(e)])  # camera looks forward and down
    screen_up = np.array([0.0, math.cos(e), math.sin(e)])
    right = np.array([1.0, 0.0, 0.0])
    light = np.array([0.35, 0.85, -0.4])
    light /= np.linalg.norm(light)
    k = animal.scale

    spheres = MODELS[animal.species]
    centers = np.array([[s.u, s.v, s.w] for s in spheres]) @ np.stack([fwd, up, lat])
    radii = np.array([s.r for s in spheres])
    sx = animal.x + k * centers @ right
    sy = animal.y - k * centers @ screen_up
    x0 = int(max(0, math.floor((sx - k * radii).min())))
    x1 = int(min(width, math.ceil((sx + k * radii).max()) + 1))
    y0 = int(max(0, math.floor((sy - k * radii).min())))
    y1 = int(min(height, math.ceil((sy + k * radii).max()) + 1))

    if shadow:  # soft dark ellipse on the ground under the body (drawn before the animal)
        length = 1.6 * k * (abs(math.sin(h)) + 0.45 * abs(math.cos(h)) * math.sin(e) + 0.3)
        _shade_ellipse(image, animal.x, animal.y, length / 2, 0.35 * k * (1 + math.sin(e)), 0.55)
    if x0 >= x1 or y0 >= y1:
        return None

    depth = np.full((y1 - y0, x1 - x0), np.inf)
    color = np.zeros((y1 - y0, x1 - x0, 3))
    for s, c, r, cx, cy in zip(spheres, centers, radii, sx, sy):
        rp = k * r
        wx0, wx1 = max(x0, int(cx - rp)), min(x1, int(cx + rp) + 2)
        wy0, wy1 = max(y0, int(cy - rp)), min(y1, int(cy + rp) + 2)
        if wx0 >= wx1 or wy0 >= wy1:
            continue
        gy, gx = np.mgrid[wy0:wy1, wx0:wx1]
        a = (gx + 0.5 - cx) / k
        b = -(gy + 0.5 - cy) / k
        inside = a * a + b * b < r * r
        if not inside.any():
            continue
        a, b = a[inside], b[inside]
        dz = np.sqrt(r * r - a * a - b * b)
        points = c + a[:, None] * right + b[:, None] * screen_up - dz[:, None] * view
        z = points @ view
        iy, ix = gy[inside] - y0, gx[inside] - x0
        nearer = z < depth[iy, ix]
        if not nearer.any():
            continue
        points, z, iy, ix = points[nearer], z[nearer], iy[nearer], ix[nearer]
        normal = (points - c) / r
        shade = 0.42 + 0.58 * np.clip(normal @ light, 0.0, 1.0)
        albedo = _albedo(animal.species, s.part, points @ fwd, points @ up, points @ lat, animal.seed)
        depth[iy, ix] = z
        color[iy, ix] = albedo * shade[:, None]
    mask = np.isfinite(depth)
    if not mask.any():
        return None
    region = image[y0:y1, x0:x1]
    region[mask] = np.clip(color[mask] * 255.0, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    return np.array([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1], np.float32)


def _shade_ellipse(image, cx, cy, rx, ry, strength):
    height, width = image.shape[:2]
    xa, xb = max(0, int(cx - rx)), min(width, int(cx + rx) + 1)
    ya, yb = max(0, int(cy - ry)), min(height, int(cy + ry) + 1)
    if xa >= xb or ya >= yb:
        return
    gy, gx = np.mgrid[ya:yb, xa:xb]
    d = ((gx - cx) / max(rx, 1)) ** 2 + ((gy - cy) / max(ry, 1)) ** 2
    factor = 1.0 - strength * np.clip(1.0 - d, 0.0, 1.0) ** 0.5
    image[ya:yb, xa:xb] = (image[ya:yb, xa:xb] * factor[..., None]).astype(np.uint8)


def make_ground(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 savannah: dry grass with green patches, speckle and a few dark bushes."""

    def noise(cells):
        small = rng.random((max(2, height // cells), max(2, width // cells))).astype(np.float32)
        return np.asarray(PILImage.fromarray(small, mode="F").resize((width, height), PILImage.BICUBIC))

    low = np.clip(0.6 * noise(90) + 0.4 * noise(30), 0, 1)[..., None]
    dry = np.array([176, 154, 98], np.float32)
    green = np.array([112, 128, 66], np.float32)
    img = dry * (1 - low) + green * low
    img *= (0.88 + 0.12 * noise(4))[..., None]
    img += rng.normal(0, 7, (height, width, 1)).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(max(1, height * width // 60000)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(8, 26)
        _shade_ellipse(img, cx + r * 0.3, cy + r * 0.4, r * 1.1, r * 0.6, 0.4)
        xa, xb = max(0, int(cx - r)), min(width, int(cx + r) + 1)
        ya, yb = max(0, int(cy - r)), min(height, int(cy + r) + 1)
        if xa < xb and ya < yb:
            gy, gx = np.mgrid[ya:yb, xa:xb]
            blob = (gx - cx) ** 2 + (gy - cy) ** 2 < r * r * (0.7 + 0.3 * rng.random(gx.shape))
            img[ya:yb, xa:xb][blob] = (np.array([58, 82, 40]) * rng.uniform(0.7, 1.1)).astype(np.uint8)
    return img


# ---------------------------------------------------------------------------------------------
# The flight
# ---------------------------------------------------------------------------------------------
