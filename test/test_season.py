"""season/: manifest rows, input and configuration hashes, markers and the atomic commit, the skip rule, and
season metrics merged as confusion matrices (no worker processes here; test_season_batch.py runs them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers.season_inputs import write_manifest

from pose_classifier_ros.evaluation.uncertainty import accuracy_interval
from pose_classifier_ros.labels import INDEX, VIEWPOINTS
from pose_classifier_ros.metrics import (
    classification_report,
    classification_report_from_confusion,
    confusion_matrix,
    error_structure,
    error_structure_from_confusion,
)
from pose_classifier_ros.replay.cli import add_processing_arguments
from pose_classifier_ros.season import markers as M
from pose_classifier_ros.season.engines import parse_time_minutes, threads_per_worker
from pose_classifier_ros.season.manifest import ManifestError, option_actions, read_manifest
from pose_classifier_ros.season.plan import plan_inputs
from pose_classifier_ros.season.season_report import IntervalOptions, season_metrics


def _actions():
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    add_processing_arguments(parser)
    dests = [a.dest for a in parser._actions if a.option_strings]
    return option_actions(parser, dests)


# ---------------------------------------------------------------------------------------------
# manifest
# ---------------------------------------------------------------------------------------------
def test_manifest_csv_names_overrides_and_metadata(tmp_path):
    for d in ("a/flight", "b/flight", "c"):
        (tmp_path / d).mkdir(parents=True)
    text = (
        "# a season\n"
        "path,name,site,species,ground_truth,image-topic,schedule,crops_per_second,no_baseline\n"
        "a/flight,,OPC,zebra,gt/a.csv,/cam/compressed,scheduled,2.5,yes\n"
        "b/flight,,OPC,giraffe,,,,,\n"
        "c/x.mcap,,Mpala,,,,bogus,,\n"
        "a/flight,,OPC,zebra,,,,,false\n"
        "c,own name,,,,,,,\n"
    )
    (tmp_path / "m.csv").write_text(text)
    m = read_manifest(tmp_path / "m.csv", _actions())
    assert [s.name for s in m.inputs] == ["a_flight", "b_flight", "x", "a_flight-2", "own_name"]
    a = m.inputs[0]
    assert a.path == tmp_path / "a/flight" and a.row == 1 and a.error is None
    assert a.options == {
        "ground_truth": tmp_path / "gt/a.csv",  # relative to the manifest's folder
        "image_topic": "/cam/compressed",
        "schedule": "scheduled",
        "crops_per_second": 2.5,
        "no_baseline": True,
    }
    assert a.metadata == {"site": "OPC", "species": "zebra"}
    assert m.inputs[1].options == {} and m.inputs[3].options == {"no_baseline": False}
    assert "schedule" in m.inputs[2].error and "bogus" in m.inputs[2].error  # this row only
    assert m.metadata_columns == ["site", "species"]


def test_manifest_yaml_defaults_and_tracks_column(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "defaults: {site: OPC, batch_size: 4}\n"
        "inputs:\n"
        "  - {path: v/one.mp4, tracks: v/one.xml, tracks_format: cvat, species: zebra}\n"
        "  - {path: /abs/flight, site: Mpala, batch_size: 8, altitude: 30}\n"
    )
    m = read_manifest(tmp_path / "m.yaml", _actions())
    one, two = m.inputs
    assert one.name == "one" and one.tracks == tmp_path / "v/one.xml" and one.tracks_format == "cvat"
    assert one.options == {"batch_size": 4} and one.metadata == {"site": "OPC", "species": "zebra"}
    assert two.path.as_posix() == "/abs/flight" and two.options == {"batch_size": 8}
    assert two.metadata == {"site": "Mpala", "altitude": "30"}


def test_manifest_errors(tmp_path):
    (tmp_path / "nopath.csv").write_text("file,site\nx,OPC\n")
    with pytest.raises(ManifestError, match="'path' column"):
        read_manifest(tmp_path / "nopath.csv")
    (tmp_path / "empty.csv").write_text("path,site\n")
    with pytest.raises(ManifestError, match="no inputs"):
        read_manifest(tmp_path / "empty.csv")
    (tmp_path / "bad.yaml").write_text("inputs: {path: x}\n")
    with pytest.raises(ManifestError, match="list of rows"):
        read_manifest(tmp_path / "bad.yaml")
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest(tmp_path / "absent.csv")


# ---------------------------------------------------------------------------------------------
# hashes
# ---------------------------------------------------------------------------------------------
def _bag_like(folder):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    (folder / "data.mcap").write_bytes(rng.integers(0, 256, 5 << 20, dtype=np.uint8).tobytes())  # 5 MiB
    (folder / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    return folder


def test_input_hash_reads_sizes_heads_and_tails_not_mtimes(tmp_path):
    bag = _bag_like(tmp_path / "bag")
    h = M.input_hash([bag])
    assert h.startswith("sha256:") and M.input_hash([bag]) == h
    os.utime(bag / "data.mcap", (1, 1))  # a copy to the cluster's file system changes mtimes
    assert M.input_hash([bag]) == h
    copy = shutil.copytree(bag, tmp_path / "copy" / "bag", copy_function=shutil.copyfile)
    assert M.input_hash([copy]) == h
    data = bytearray((bag / "data.mcap").read_bytes())
    for offset, changes in ((len(data) - 10, True), (100, True), (len(data) // 2, False)):
        edited = bytearray(data)
        edited[offset] ^= 0xFF
        (copy / "data.mcap").write_bytes(bytes(edited))
        # the summary/footer (tail) and header change a hash; the middle of a big file is not read (by design)
        assert (M.input_hash([copy]) != h) is changes, offset
    (copy / "data.mcap").write_bytes(bytes(data) + b"x")
    assert M.input_hash([copy]) != h
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {x: 1}\n")  # small files: whole content
    assert M.input_hash([bag]) != h
    assert M.input_hash([bag, None]) == M.input_hash([bag])
    assert M.input_hash([bag, tmp_path / "copy"]) != M.input_hash([bag])  # a ground-truth file counts too
    with pytest.raises(FileNotFoundError, match="does not exist"):
        M.input_hash([tmp_path / "nope"])


def test_config_hash_follows_content_not_paths(tmp_path):
    ckpt = tmp_path / "a.pth"
    ckpt.write_bytes(b"weights-1")
    base = {"backend": "eager", "image_topic": "/cam"}
    h = M.config_hash(base, {"checkpoint": ckpt, "params": None})
    moved = tmp_path / "b.pth"
    shutil.copyfile(ckpt, moved)
    assert M.config_hash(base, {"checkpoint": moved, "params": None}) == h
    assert M.config_hash(dict(base, backend="int8"), {"checkpoint": ckpt, "params": None}) != h
    moved.write_bytes(b"weights-2")
    assert M.config_hash(base, {"checkpoint": moved, "params": None}) != h


# ---------------------------------------------------------------------------------------------
# markers, commit, plan
# ---------------------------------------------------------------------------------------------
def test_partial_commit_and_markers(tmp_path):
    out = tmp_path / "out"
    stale = out / M.PARTIAL_DIR / "a@node7@4242"  # a killed worker's folder
    stale.mkdir(parents=True)
    (stale / "metrics.json").write_text("{}")
    other = M.new_partial(out, "a.b")  # another input whose name starts the same
    partial = M.new_partial(out, "a")
    assert not stale.exists() and other.exists() and partial.name.startswith("a@")
    assert M.read_marker(out / "a") is None  # a partial folder is never a result
    M.write_json(partial / M.SUCCESS, M.Marker("done", "a", "/in/a", "h1", "c1", summary={"crops": 3}).to_dict())
    M.commit(partial, out / "a")
    marker = M.read_marker(out / "a")
    assert marker.matches("h1", "c1") and not marker.matches("h2", "c1") and marker.summary == {"crops": 3}
    M.record_failure(out, "a", "/in/a", "boom", error_type="ValueError")  # replaces the old folder whole
    marker = M.read_marker(out / "a")
    assert marker.status == "failed" and marker.error == "boom" and not (out / "a" / M.SUCCESS).exists()
    assert json.loads((out / "a" / M.FAILED).read_text())["format"] == M.MARKER_FORMAT
    assert not list((out / ".partial").glob("a@*")) and not list((out / ".trash").iterdir())
    (out / "a" / M.FAILED).write_text("{not json")
    assert M.read_marker(out / "a") is None


def test_plan_skips_matching_markers_only(tmp_path):
    bag = _bag_like(tmp_path / "in" / "f1")
    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(b"w")
    write_manifest(tmp_path / "m.csv", [{"path": "in/f1", "site": "A"}, {"path": "in/gone", "site": "B"}])
    specs = read_manifest(tmp_path / "m.csv", _actions()).inputs
    base = {"checkpoint": ckpt, "backend": "eager", "params": None, "backbone_weights": None, "ground_truth": None}
    out = tmp_path / "out"

    plan = plan_inputs(specs, base, out, record=False)
    assert [p.action for p in plan] == ["run", "failed"] and "does not exist" in plan[1].reason
    assert not (out / "f1").exists() and not (out / "gone").exists()  # record=False: --merge-only writes nothing
    plan = plan_inputs(specs, base, out)
    assert M.read_marker(out / "gone").status == "failed"
    task = plan[0].task
    partial = M.new_partial(out, "f1")
    M.write_json(partial / M.SUCCESS, M.Marker("done", "f1", str(bag), task.input_hash, task.config_hash).to_dict())
    M.commit(partial, out / "f1")
    assert [p.action for p in plan_inputs(specs, base, out)][0] == "skip"
    assert plan_inputs(specs, base, out, force=True)[0].reason == "--force"
    assert plan_inputs(specs, dict(base, backend="int8"), out)[0].reason == "configuration changed"
    assert plan_inputs(specs, base, out, write_bag=True)[0].reason == "configuration changed"
    (bag / "metadata.yaml").write_text("changed\n")
    assert plan_inputs(specs, base, out)[0].reason == "input changed"
    assert plan_inputs(specs, base, out, in_flight={"f1": "7_0 RUNNING"})[0].action == "in_flight"
    # a finished flight archived away keeps its result (the same configuration), never a failure over it
    plan = plan_inputs(specs, base, out)
    M.write_json(out / "f1" / M.SUCCESS, M.Marker("done", "f1", str(bag), "old", plan[0].task.config_hash).to_dict())
    shutil.rmtree(bag)
    kept = plan_inputs(specs, base, out)[0]
    assert kept.action == "skip" and "gone" in kept.reason and M.read_marker(out / "f1").status == "done"
    assert plan_inputs(specs, dict(base, backend="int8"), out)[0].action == "failed"


def test_replay_options_cover_every_replay_option():
    """batch passes the replay parser's processing options as ReplayOptions fields: a new replay option needs
    its field (and then works per input and in the manifest at once)."""
    import argparse
    import dataclasses

    from pose_classifier_ros.replay.cli import add_arguments
    from pose_classifier_ros.replay.replay_run import ReplayOptions

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == {f.name for f in dataclasses.fields(ReplayOptions)}
    args = parser.parse_args(["bag", "--checkpoint", "c.pth", "--schedule", "scheduled", "--max-crops", "3"])
    options = ReplayOptions.from_args(args)
    assert options.schedule == "scheduled" and options.max_crops == 3 and options.no_out is False


def test_time_limits_and_threads():
    assert [parse_time_minutes(t) for t in ("90", "1:30:00", "2-00:00:00", "30:30", "0:0:1")] == [90, 90, 2880, 31, 1]
    with pytest.raises(ValueError):
        parse_time_minutes("0")
    assert threads_per_worker(2, cores=16) == 8 and threads_per_worker(3, cores=2) == 1


@pytest.mark.process
def test_season_modules_do_not_import_torch():
    """Pool workers and SLURM tasks set their threads before torch loads: the modules they unpickle from must
    not import it."""
    code = (
        "import sys; import pose_classifier_ros.season.engines, pose_classifier_ros.season.runner, "
        "pose_classifier_ros.season.plan, pose_classifier_ros.season.season_report; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------------------------------------------
# merged metrics
# ---------------------------------------------------------------------------------------------
def _runs(seed=3):
    rng = np.random.default_rng(seed)
    runs = {}
    for name, n in (("a", 40), ("b", 25), ("c", 0), ("d", 60)):
        t = rng.integers(0, 8, n)
        p = np.where(rng.random(n) < 0.7, t, rng.integers(0, 8, n))
        runs[name] = (t, p)
    return runs


def test_reports_from_confusion_matrices_equal_the_per_sample_ones():
    for t, p in _runs().values():
        cm = confusion_matrix(t, p, 8)
        assert classification_report_from_confusion(cm) == classification_report(t, p)
        assert error_structure_from_confusion(cm) == error_structure(t, p)


def test_season_metrics_are_those_of_the_concatenated_crops():
    runs = _runs()
    meta = {"a": {"site": "OPC"}, "b": {"site": "Mpala"}, "c": {"site": "OPC"}, "d": {}}
    cms = {k: confusion_matrix(t, p, 8) for k, (t, p) in runs.items()}
    opt = IntervalOptions(resamples=500, seed=1)
    season = season_metrics(cms, meta, ["site"], opt)
    t_all = np.concatenate([t for t, _ in runs.values()])
    p_all = np.concatenate([p for _, p in runs.values()])
    assert season["report"] == classification_report(t_all, p_all)
    overall = accuracy_interval(t_all == p_all, level=opt.level, resamples=500, seed=1, key="overall")
    assert season["intervals"]["overall"] == overall.to_dict()
    left = t_all == INDEX["left"]
    assert season["intervals"]["per_class"]["left"]["estimate"] == pytest.approx((p_all[left] == INDEX["left"]).mean())
    groups = season["groups"]["site"]
    assert list(groups) == ["Mpala", "OPC", "(missing)"]
    opc_t = np.concatenate([runs["a"][0], runs["c"][0]])
    opc_p = np.concatenate([runs["a"][1], runs["c"][1]])
    assert groups["OPC"]["report"] == classification_report(opc_t, opc_p)
    assert groups["OPC"]["support"] == 40 and groups["(missing)"]["support"] == 60
    assert groups["Mpala"]["accuracy_ci"]["n"] == 25 and set(VIEWPOINTS) == set(season["intervals"]["per_class"])
    assert season_metrics({}, meta, ["site"], opt) is None
