"""Contact sheet PNG of sightings: one row per track, its best left, right and overall crops with their scores.

Left of each row: the track id, frames seen, duration and a bar of its voted viewpoints (colours as in the
image annotations: left flank cool, right flank warm). Pillow only (no matplotlib), so it is cheap enough to
write after every replay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.visualization.annotations import viewpoint_color

_BG, _CELL_BG, _TEXT, _DIM = (28, 28, 32), (48, 48, 54), (235, 235, 235), (150, 150, 150)
_INFO_W, _PAD, _CAPTION = 230, 8, 34
_CELLS = (("left", "best left flank"), ("right", "best right flank"), ("best", "best view"))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _rgb(label) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in viewpoint_color(label))


def _thumbnail(crop: np.ndarray, side: int) -> Image.Image:
    """The crop scaled (up or down) to fit a side x side cell, aspect kept."""
    image = Image.fromarray(np.ascontiguousarray(crop))
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def _histogram_bar(draw: ImageDraw.ImageDraw, hist: np.ndarray, x: int, y: int, w: int, h: int) -> None:
    total = int(hist.sum())
    draw.rectangle([x, y, x + w - 1, y + h - 1], outline=_DIM)
    if total <= 0:
        return
    pos = float(x)
    for label, count in enumerate(hist):
        if count:
            width = w * float(count) / total
            draw.rectangle([round(pos), y, max(round(pos), round(pos + width) - 1), y + h - 1], fill=_rgb(label))
            pos += width


def _row(sheet: Image.Image, s, y: int, side: int, t0_ns: int, fonts) -> None:
    draw = ImageDraw.Draw(sheet)
    big, small = fonts
    draw.text((_PAD, y + 4), str(s.track_id)[:28], fill=_TEXT, font=big)
    draw.text((_PAD, y + 26), f"{s.frames} frames ({s.classified_frames} classified)", fill=_DIM, font=small)
    draw.text(
        (_PAD, y + 42),
        f"t = {(s.first_stamp_ns - t0_ns) * 1e-9:.1f} .. {(s.last_stamp_ns - t0_ns) * 1e-9:.1f} s",
        fill=_DIM,
        font=small,
    )
    hist = np.asarray(s.histogram)
    _histogram_bar(draw, hist, _PAD, y + 62, _INFO_W - 2 * _PAD, 14)
    top = [(VIEWPOINTS[i], int(hist[i])) for i in np.argsort(-hist)[:3] if hist[i] > 0]
    draw.text((_PAD, y + 80), ", ".join(f"{n} {c}" for n, c in top), fill=_DIM, font=small)
    for col, (slot, caption) in enumerate(_CELLS):
        x = _INFO_W + col * (side + _PAD)
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=_CELL_BG)
        view = s.views.get(slot)
        if view is None or view.crop is None or not view.crop.size:
            draw.text(
                (x + 8, y + side // 2 - 8), f"no {slot} view" if slot != "best" else "no view", fill=_DIM, font=small
            )
        else:
            thumb = _thumbnail(view.crop, side)
            sheet.paste(thumb, (x + (side - thumb.width) // 2, y + (side - thumb.height) // 2))
            draw.rectangle([x, y, x + side - 1, y + side - 1], outline=_rgb(view.label), width=2)
        text = f"{caption}: {view.score:.2f}" if view is not None else caption
        draw.text((x, y + side + 2), text, fill=_TEXT, font=small)
        if view is not None:
            draw.text(
                (x, y + side + 17),
                f"{VIEWPOINTS[view.label]} {view.confidence:.2f}, t = "
                f"{(view.stamp_ns - t0_ns) * 1e-9:.1f} s{', cut' if view.truncated else ''}",
                fill=_DIM,
                font=small,
            )


def write_contact_sheet(
    sightings,
    path: str | Path,
    side: int = 160,
    max_rows: int = 100,
    title: str = "best views per track",
    sort: bool = True,
) -> Path:
    """PNG at `path`: one row per Sighting (first seen first, at most `max_rows`), thumbnails `side` px.
    sort=False keeps the given order (a season sheet: flight after flight).

    Sightings need crops (BestViewConfig.keep_crops). Times are seconds from the first sighting's start.
    """
    rows = sorted(sightings, key=lambda s: (s.first_stamp_ns, str(s.track_id))) if sort else list(sightings)
    shown = rows[:max_rows]
    row_h = side + _CAPTION + _PAD
    width = _INFO_W + len(_CELLS) * (side + _PAD)
    header_h = 48
    sheet = Image.new("RGB", (width, header_h + max(1, len(shown)) * row_h), _BG)
    draw = ImageDraw.Draw(sheet)
    fonts = (_font(16), _font(12))
    more = f" (first {len(shown)} of {len(rows)} tracks)" if len(rows) > len(shown) else f" ({len(rows)} tracks)"
    draw.text((_PAD, 6), title + more, fill=_TEXT, font=fonts[0])
    x = _PAD
    for label, name in enumerate(VIEWPOINTS):  # colour legend of the viewpoint bar
        draw.rectangle([x, 30, x + 10, 40], fill=_rgb(label))
        draw.text((x + 13, 28), name, fill=_DIM, font=fonts[1])
        x += 16 + int(draw.textlength(name, font=fonts[1])) + 8
    if not shown:
        draw.text((_PAD, header_h + 8), "no tracks", fill=_DIM, font=fonts[0])
    t0 = min((s.first_stamp_ns for s in rows), default=0)
    for i, s in enumerate(shown):
        _row(sheet, s, header_h + i * row_h, side, t0, fonts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


__all__ = ("write_contact_sheet",)
