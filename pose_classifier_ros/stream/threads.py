"""The node's threading pieces, ROS-free: the frame hand-over queue and the inference thread's priority.

The node runs its executor thread (callbacks: pairing, and in scheduled mode observe + publish) and one
more thread (every_frame: the worker that steps each frame; scheduled: the inference thread that
classifies the newest observed frame). FrameQueue hands frames between them; the priority helpers keep
the model from starving the cheap publishing path on a busy CPU (schedule.inference_nice).
"""

from __future__ import annotations

import os
import threading
from collections import deque


class FrameQueue:
    """Frames from the executor to the other thread. "latest": one slot, a new frame replaces the waiting
    one; "all": FIFO of `maxsize`, the oldest is dropped when full. put() returns how many were dropped."""

    def __init__(self, policy: str, maxsize: int):
        self._items: deque = deque()
        self._maxsize = 1 if policy == "latest" else maxsize
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item) -> int:
        with self._cond:
            dropped = 0
            while len(self._items) >= self._maxsize:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self):
        """The next item, or None once closed."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            return None if self._closed else self._items.popleft()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


def lower_thread_priority(nice: int) -> None:
    """Raise this thread's niceness by `nice` (Linux: per thread, inherited by threads it creates; allowed
    without privileges). In scheduled mode the inference path runs so, so that on a busy CPU the cheap
    publishing path does not queue behind the model (schedule.inference_nice)."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + nice, 19))
    except (AttributeError, OSError):
        pass


def at_inference_priority(nice: int, build):
    """build() in a thread at niceness +nice (nice > 0), so that the thread pools the model runtime creates
    there (ONNX Runtime's intra-op threads) inherit it; returns build()'s result or raises its error."""
    if nice <= 0:
        return build()
    out: dict = {}

    def run():
        lower_thread_priority(nice)
        try:
            out["value"] = build()
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=run, name="pose_classifier_model_build")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


__all__ = ["FrameQueue", "at_inference_priority", "lower_thread_priority"]
