"""Polling with a deadline for tests that wait on other processes or files."""

from __future__ import annotations

import time

import pytest


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until truthy; fail the test with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")
