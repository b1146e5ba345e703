"""Failures say why: log an exception at ERROR with its type, message and traceback, once per distinct cause.

rclpy turns an exception escaping a lifecycle transition into the ERROR transition without logging it,
and a callback that fails on every message would flood the log. `FailureLog.report` logs the full
traceback the first time a cause is seen (same place, same exception type and message) and only counts
repeats; `guard` wraps a transition or callback so that whatever escapes is reported and then re-raised
(the node behaves as before, but the log says why). No rclpy import: the node passes its logger's error.
"""

from __future__ import annotations

import functools
import threading
import traceback
from collections import Counter
from collections.abc import Callable

MAX_CAUSES = 256  # distinct causes remembered (memory bound); older ones may be logged again


def _cause_key(where: str, exc: BaseException) -> tuple:
    tb = traceback.extract_tb(exc.__traceback__)
    origin = (tb[-1].filename, tb[-1].lineno) if tb else ("", 0)
    return where, type(exc).__qualname__, str(exc)[:500], origin


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception (the type alone when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class FailureLog:
    """error: callable taking one string (e.g. node.get_logger().error). Thread-safe."""

    def __init__(self, error: Callable[[str], None]):
        self._error = error
        self._seen: dict[tuple, None] = {}
        self._lock = threading.Lock()
        self.repeats: Counter = Counter()  # where -> failures not logged again
        self.last: str = ""  # "<where>: <Type>: <message>" of the latest failure (for on_error)

    def report(self, where: str, exc: BaseException) -> bool:
        """Log `exc` (raised in `where`, e.g. "configure" or "image callback") unless its cause was logged
        before; returns True when it was logged."""
        key = _cause_key(where, exc)
        with self._lock:
            self.last = f"{where}: {describe(exc)}"
            if key in self._seen:
                self.repeats[where] += 1
                return False
            self._seen[key] = None
            while len(self._seen) > MAX_CAUSES:
                self._seen.pop(next(iter(self._seen)))
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        self._error(f"{where} failed: {describe(exc)}\n{text}")
        return True

    def guard(self, where: str) -> Callable:
        """Decorator: report any exception escaping the wrapped function, then re-raise it."""

        def wrap(fn):
            @functools.wraps(fn)
            def guarded(*args, **kwargs):
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    self.report(where, exc)
                    raise

            return guarded

        return wrap


def reported(where: str, *, reraise: bool = True) -> Callable:
    """Method decorator for a node with a `failures` FailureLog: an exception escaping the method is reported
    (type, message, traceback; once per cause) before rclpy sees it (rclpy turns it into the error transition,
    or stops spinning, without saying why). reraise=False (subscription callbacks): reported, counted in
    failures.repeats, and the node keeps going; one bad message must not stop the stream."""

    def wrap(fn):
        @functools.wraps(fn)
        def logged(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:
                self.failures.report(where, exc)
                if reraise:
                    raise
                return None

        return logged

    return wrap


__all__ = ["FailureLog", "describe", "reported"]
