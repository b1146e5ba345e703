"""sample_bag: the renderer shows the viewpoint, and the bag, its ground truth and the CSV agree."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image as PILImage

from pose_classifier_ros.bags import sample_bag as sb
from pose_classifier_ros.bags.bagio import open_reader
from pose_classifier_ros.labels import HEADING_DEG, INDEX, VIEWPOINTS


def _render(heading, species="zebra"):
    img = np.full((200, 200, 3), 128, np.uint8)
    box = sb.render_animal(img, sb.Animal(species, 100, 140, heading, 40.0), shadow=False)
    return img, box


def test_heading_to_class_is_nearest_bin():
    for i, heading in enumerate(HEADING_DEG):
        assert sb.heading_to_class(heading) == i
        assert sb.heading_to_class(heading + 20) == i
    assert sb.heading_to_class(359.0) == INDEX["front"]
    assert sb.heading_to_class(-90.0) == INDEX["right"]


@pytest.mark.parametrize("species", sb.SPECIES)
def test_left_and_right_are_mirror_images(species):
    left, box_l = _render(HEADING_DEG[INDEX["left"]], species)
    right, box_r = _render(HEADING_DEG[INDEX["right"]], species)
    assert box_l is not None and box_r is not None
    # same silhouette mirrored (about the ground point x = 100)
    mask_l = np.any(left != 128, axis=2)
    mask_r = np.any(right != 128, axis=2)
    mirrored = mask_r[:, ::-1]
    overlap = (mask_l & mirrored).sum() / mask_l.sum()
    assert overlap > 0.9
    # the head leads: facing image-left, the highest pixels (ears, horns) are in the left half of the box
    ys, xs = np.nonzero(mask_l)
    top = xs[ys < ys.min() + 6]
    assert top.mean() < (box_l[0] + box_l[2]) / 2


def test_front_and_back_differ_and_viewpoints_change_the_picture():
    images = [_render(h)[0].astype(np.int16) for h in HEADING_DEG]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert np.abs(images[i] - images[j]).mean() > 0.5, (VIEWPOINTS[i], VIEWPOINTS[j])


def test_animal_outside_the_image_has_no_box_and_partial_one_is_clipped():
    img = np.zeros((100, 100, 3), np.uint8)
    assert sb.render_animal(img, sb.Animal("zebra", -500, 50, 90, 20.0)) is None
    box = sb.render_animal(img, sb.Animal("zebra", 98, 70, 90, 20.0))
    assert box is not None and box[2] == 100 and box[0] < 100


def test_flight_frames_and_ground_truth():
    cfg = sb.FlightConfig(width=320, height=180, frames=8, empty_frame=3, seed=1)
    frames = list(sb.generate_flight(cfg))
    assert [f.index for f in frames] == list(range(8))
    assert all(f.image.shape == (180, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[3].boxes == []
    assert all(len(f.boxes) >= 3 for i, f in enumerate(frames) if i != 3)
    for f in frames:
        for g in f.boxes:
            assert 0 <= g.box[0] < g.box[2] <= 320 and 0 <= g.box[1] < g.box[3] <= 180
            assert g.label == sb.heading_to_class(g.heading_deg)
    # one animal is cut by the right image edge
    assert any(g.box[2] >= 319.0 for f in frames for g in f.boxes)
    # deterministic
    again = list(sb.generate_flight(cfg))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, again))


@pytest.mark.process
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_cli_writes_consistent_bag_csv_and_crops(tmp_path, storage):
    out = tmp_path / "sample"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pose_classifier_ros.cli",
            "make-sample-bag",
            str(out),
            "--width",
            "256",
            "--height",
            "160",
            "--frames",
            "6",
            "--storage",
            storage,
            "--compressed",
            "--crops-dir",
            str(tmp_path / "crops"),
            "--crops-per-class",
            "2",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    with (out / "ground_truth.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"stamp_ns", "frame_index", "track_id", "pose"}
    csv_gt = {(int(r["stamp_ns"]), r["track_id"]): r["pose"] for r in rows}

    with open_reader(out / "flight") as reader:
        topics = reader.topics
        assert topics[sb.IMAGE_TOPIC].count == 6 and topics[sb.COMPRESSED_TOPIC].count == 6
        images, dets, gts = {}, {}, {}
        for topic, bag_ns, raw, msgtype in reader.messages():
            msg = reader.deserialize(raw, msgtype)
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            if topic == sb.IMAGE_TOPIC:
                assert bag_ns == stamp and msg.encoding == "rgb8" and (msg.width, msg.height) == (256, 160)
                images[stamp] = msg
            elif topic == sb.DETECTIONS_TOPIC:
                assert bag_ns == stamp + sb.DETECTOR_LATENCY_NS
                dets[stamp] = [(d.id, d.bbox.center.position.x, d.results[0].hypothesis.score) for d in msg.detections]
            elif topic == sb.GROUND_TRUTH_TOPIC:
                gts[stamp] = {vp.track_id: vp.label_name for vp in msg.viewpoints}
    assert set(images) == set(dets) == set(gts)
    assert dets[min(dets)] == []  # frame 0 is the empty frame
    bag_gt = {(s, tid): name for s, d in gts.items() for tid, name in d.items()}
    assert bag_gt == csv_gt
    assert {(s, d[0]) for s, ds in dets.items() for d in ds} == set(csv_gt)
    assert all(0.5 < d[2] < 1.0 for ds in dets.values() for d in ds)

    crops = sorted((tmp_path / "crops").glob("*/*.png"))
    assert len(crops) == 16
    assert {p.parent.name for p in crops} == set(VIEWPOINTS)
    assert all(min(PILImage.open(p).size) >= 16 for p in crops)
