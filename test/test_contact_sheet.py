"""Contact sheet: one row per track, the crops in their cells, empty cells for missing flanks."""

from __future__ import annotations

import numpy as np
from helpers.best_view_flight import FLIGHT, PERIOD, R, run_flight
from PIL import Image

from pose_classifier_ros.visualization.best_views import BestViewTracker
from pose_classifier_ros.visualization.contact_sheet import write_contact_sheet


def test_rows_cells_and_crops(tmp_path):
    a, b = BestViewTracker(), BestViewTracker()
    run_flight(a)
    run_flight(b, [((300, 100, 500, 250), R, 0.9, 0.0)], track="iou-2", start=len(FLIGHT) * PERIOD)
    path = write_contact_sheet(a.flush() + b.flush(), tmp_path / "sheet.png", side=120)
    sheet = np.asarray(Image.open(path).convert("L"), np.float32)
    row_h, header, info = 120 + 34 + 8, 48, 230
    assert sheet.shape == (header + 2 * row_h, info + 3 * (120 + 8))

    def cell(row, col):
        y, x = header + row * row_h, info + col * 128
        return sheet[y + 10 : y + 110, x + 10 : x + 110]

    # striped crops where a view exists (high contrast), a plain cell with a caption where none does
    assert cell(0, 0).std() > 60 and cell(0, 2).std() > 60 and cell(1, 1).std() > 60
    assert cell(0, 1).std() < cell(0, 0).std() / 3 and cell(1, 0).std() < cell(1, 1).std() / 3


def test_no_tracks_still_writes_a_sheet(tmp_path):
    path = write_contact_sheet([], tmp_path / "empty.png")
    assert Image.open(path).size[1] > 48
