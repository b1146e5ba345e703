"""A frame's index drawn into the image as a block code, and read back from a crop of it.

For frame-accuracy tests: a box around the code on frame k crops a code that reads k only when that box
is paired with frame k. The code is a white ring of cells around two rows of black/white bit cells (most
significant bit first); cells are ``cell`` px so video compression keeps them readable. The code moves
far between frames (``code_position``), so a box paired with a neighbouring frame crops something else.
"""

from __future__ import annotations

import numpy as np

CELL = 8  # px per cell
BITS = 16  # two rows of 8: indices 0..65535


def code_size(cell: int = CELL, bits: int = BITS) -> tuple[int, int]:
    """(width, height) of the code in px: (bits/2 + 2) x 4 cells (a one-cell white ring)."""
    return (bits // 2 + 2) * cell, 4 * cell


def code_position(index: int, width: int, height: int, cell: int = CELL, bits: int = BITS) -> tuple[int, int]:
    """Top-left (x, y) of frame `index`'s code: jumps by many cells from one frame to the next."""
    w, h = code_size(cell, bits)
    span_x, span_y = max(1, (width - w) // cell), max(1, (height - h) // cell)
    return (index * 37 % span_x) * cell, (index * 11 % span_y) * cell


def draw_frame_code(image: np.ndarray, index: int, x: int, y: int, cell: int = CELL, bits: int = BITS) -> np.ndarray:
    """Draw `index` at (x, y) into `image` ((H, W, 3) uint8, in place); returns the box (4,) float32 xyxy."""
    if not 0 <= index < 1 << bits:
        raise ValueError(f"index {index} does not fit in {bits} bits")
    cols = bits // 2
    grid = np.full((4, cols + 2), 255, np.uint8)
    for b in range(bits):
        bit = (index >> (bits - 1 - b)) & 1
        grid[1 + b // cols, 1 + b % cols] = 255 if bit else 0
    block = np.repeat(np.repeat(grid, cell, axis=0), cell, axis=1)
    h, w = block.shape
    image[y : y + h, x : x + w] = block[..., None]
    return np.array([x, y, x + w, y + h], np.float32)


def read_frame_code(crop: np.ndarray, cell: int = CELL, bits: int = BITS) -> int | None:
    """The index coded in `crop` ((h, w, 3) uint8, exactly the code's box); None when it holds no code
    (the ring is not white or a bit cell is neither black nor white)."""
    cols = bits // 2
    w, h = code_size(cell, bits)
    if crop.shape[0] != h or crop.shape[1] != w:
        return None
    gray = crop.astype(np.float32).mean(axis=2)
    centre = cell // 2
    half = max(1, cell // 4)
    cells = np.array(
        [
            [
                gray[
                    r * cell + centre - half : r * cell + centre + half,
                    c * cell + centre - half : c * cell + centre + half,
                ].mean()
                for c in range(cols + 2)
            ]
            for r in range(4)
        ]
    )
    ring = np.concatenate([cells[0], cells[-1], cells[1:-1, 0], cells[1:-1, -1]])
    inner = cells[1:3, 1:-1].reshape(-1)
    if ring.min() < 200 or np.any((inner > 60) & (inner < 195)):
        return None
    value = 0
    for v in inner:
        value = (value << 1) | int(v >= 128)
    return value


__all__ = ["BITS", "CELL", "code_position", "code_size", "draw_frame_code", "read_frame_code"]
