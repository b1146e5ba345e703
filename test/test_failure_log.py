"""FailureLog: type, message and traceback at ERROR, once per distinct cause; guard re-raises."""

import pytest

from pose_classifier_ros.ros.failure_log import FailureLog


def _fail(value):
    raise ValueError(f"bad value {value}")


def test_report_logs_traceback_once_per_cause():
    lines = []
    log = FailureLog(lines.append)
    for _ in range(3):
        try:
            _fail(1)
        except ValueError as exc:
            log.report("image callback", exc)
    assert len(lines) == 1
    assert lines[0].startswith("image callback failed: ValueError: bad value 1\nTraceback (most recent call last):")
    assert "in _fail" in lines[0] and 'raise ValueError(f"bad value {value}")' in lines[0]
    assert log.repeats["image callback"] == 2 and log.last == "image callback: ValueError: bad value 1"
    try:
        _fail(2)  # another message: another cause
    except ValueError as exc:
        assert log.report("image callback", exc)
    try:
        _fail(2)  # the same cause elsewhere is logged for that place
    except ValueError as exc:
        assert log.report("worker", exc)
    assert len(lines) == 3


def test_guard_reports_and_reraises():
    lines = []
    log = FailureLog(lines.append)

    @log.guard("configure")
    def on_configure(x):
        if x:
            raise KeyError("model.checkpoint")
        return "ok"

    assert on_configure(0) == "ok" and lines == []
    with pytest.raises(KeyError):
        on_configure(1)
    assert len(lines) == 1 and lines[0].startswith("configure failed: KeyError: 'model.checkpoint'")
    assert "in on_configure" in lines[0]
    assert on_configure.__name__ == "on_configure"
