"""rosbag2 reading and writing without ROS: a Kilted type store with vision_msgs and our messages.

`rosbags` (pure Python) reads and writes sqlite3 and MCAP rosbag2 bags. Its Kilted store lacks
vision_msgs and our ``pose_classifier_ros/msg/*``; `make_typestore` registers both from the ``.msg``
files of the ament index (``$AMENT_PREFIX_PATH/share/<pkg>/msg``), or from this repository's ``msg/``
for our own types, so the RIHS01 type hashes match the ament-built ones (`check_type_hashes`).

Every failure a user can cause (missing path, not a bag, truncated or corrupt file, missing topic)
raises `BagError` with a message that says what is wrong; for a missing topic it lists the bag's
topics and types.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore

_logger = logging.getLogger(__name__)

OUR_PACKAGE = "pose_classifier_ros"
EXTRA_PACKAGES = ("vision_msgs", OUR_PACKAGE)
STORAGE_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_REPO_MSG_DIR = Path(__file__).resolve().parents[2] / "msg"


class BagError(RuntimeError):
    """A bag cannot be read or written; the message says why (and lists topics where useful)."""


def share_dirs() -> list[Path]:
    """`share/` directories to search for interface files: the ament index, then this interpreter's prefix."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes += [sys.prefix]
    seen, dirs = set(), []
    for prefix in prefixes:
        share = Path(prefix) / "share"
        if share.is_dir() and share not in seen:
            seen.add(share)
            dirs.append(share)
    return dirs


def find_msg_dir(package: str) -> Path | None:
    """Directory holding ``package``'s installed ``.msg`` files (our package falls back to the repo's msg/)."""
    for share in share_dirs():
        candidate = share / package / "msg"
        if any(candidate.glob("*.msg")):
            return candidate
    if package == OUR_PACKAGE and any(_REPO_MSG_DIR.glob("*.msg")):
        return _REPO_MSG_DIR
    return None


def _types_from_dir(package: str, msg_dir: Path) -> dict:
    types: dict = {}
    for path in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    return types


@functools.lru_cache(maxsize=1)
def make_typestore():
    """The rosbags Kilted type store plus vision_msgs and pose_classifier_ros messages (cached).

    Raises BagError when an interface package's ``.msg`` files cannot be found.
    """
    store = get_typestore(Stores.ROS2_KILTED)
    for package in EXTRA_PACKAGES:
        if any(name.startswith(f"{package}/") for name in store.types):
            continue  # a future rosbags store may ship it; its definitions are the upstream ones
        msg_dir = find_msg_dir(package)
        if msg_dir is None:
            searched = ", ".join(str(s) for s in share_dirs()) or "(none)"
            raise BagError(
                f"cannot find the .msg files of {package!r}: looked in share/{package}/msg under "
                f"{searched}; source the ROS environment (AMENT_PREFIX_PATH) or run scripts/setup.sh"
            )
        try:
            store.register(_types_from_dir(package, msg_dir))
        except TypesysError as exc:
            raise BagError(f"cannot register {package} messages from {msg_dir}: {exc}") from None
    return store


def check_type_hashes(typestore=None, packages: Sequence[str] = EXTRA_PACKAGES) -> dict[str, tuple[str, str]]:
    """Compare rosbags' RIHS01 hashes with the ament-generated ``share/<pkg>/msg/*.json`` ones.

    Returns ``{type name: (rosbags hash, ament hash)}`` for every mismatch (empty when all agree).
    Types without a generated ``.json`` file are not checked.
    """
    typestore = typestore or make_typestore()
    mismatches = {}
    for package in packages:
        for share in share_dirs():
            for path in sorted((share / package / "msg").glob("*.json")):
                entry = json.loads(path.read_text())["type_hashes"][0]
                ours = typestore.hash_rihs01(entry["type_name"])
                if ours != entry["hash_string"]:
                    mismatches[entry["type_name"]] = (ours, entry["hash_string"])
    return mismatches


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


def format_topics(topics: Iterable[TopicInfo]) -> str:
    lines = [f"  {t.name}  [{t.msgtype}]  {t.count} messages" for t in sorted(topics, key=lambda t: t.name)]
    return "\n".join(lines) if lines else "  (no topics)"


class BagReader:
    """An open rosbag2 bag (a directory with metadata.yaml, or a single .mcap / .db3 file).

    Use as a context manager or call `close()`. Messages come in bag (receive) time order as
    ``(topic, timestamp_ns, rawdata, msgtype)``; `deserialize` turns raw CDR into rosbags objects.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.typestore = make_typestore()
        if not self.path.exists():
            raise BagError(f"bag {str(self.path)!r} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            raise BagError(
                f"{str(self.path)!r} is a directory without metadata.yaml: not a rosbag2 bag "
                f"(pass the bag directory, or its .mcap / .db3 file)"
            )
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except BagError:
            raise
        except Exception as exc:  # rosbags raises many kinds on corrupt input
            hint = (
                " (an MCAP file cut off during recording lacks its summary; `mcap recover` can repair it)"
                if "end magic" in str(exc)
                else ""
            )
            raise BagError(
                f"cannot open bag {str(self.path)!r} (corrupt, truncated or not a rosbag2 bag?): "
                f"{type(exc).__name__}: {exc}{hint}"
            ) from None
        self._connections = list(self._reader.connections)

    # -- metadata -------------------------------------------------------------------------------
    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Topic name -> TopicInfo (type and message count)."""
        topics: dict[str, TopicInfo] = {}
        for conn in self._connections:
            old = topics.get(conn.topic)
            count = (old.count if old else 0) + int(conn.msgcount or 0)
            topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count)
        return topics

    @property
    def connections(self) -> list:
        return list(self._connections)

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    def require_topic(self, topic: str, msgtypes: Sequence[str] | None = None) -> TopicInfo:
        """TopicInfo of ``topic``; BagError (listing the bag's topics) if absent or of another type."""
        info = self.topics.get(topic)
        if info is None:
            raise BagError(
                f"topic {topic!r} is not in bag {str(self.path)!r}; its topics are:\n"
                + format_topics(self.topics.values())
            )
        if msgtypes and info.msgtype not in msgtypes:
            raise BagError(
                f"topic {topic!r} in bag {str(self.path)!r} has type {info.msgtype}, expected "
                f"{' or '.join(msgtypes)}; the bag's topics are:\n" + format_topics(self.topics.values())
            )
        return info

    # -- data -----------------------------------------------------------------------------------
    def messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, bytes, str]]:
        """Yield ``(topic, timestamp_ns, rawdata, msgtype)``; all topics when ``topics`` is None.

        A storage error part-way (truncated or corrupt file) raises BagError naming the bag and
        how many messages were read before it.
        """
        wanted = None if topics is None else set(topics)
        conns = [c for c in self._connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        count = 0
        try:
            for conn, timestamp, raw in self._reader.messages(connections=conns):
                count += 1
                yield conn.topic, int(timestamp), bytes(raw), conn.msgtype
        except BagError:
            raise
        except (
            ReaderError,
            sqlite3.Error,
            OSError,
            EOFError,
            ValueError,
            KeyError,
            IndexError,
            AssertionError,
            RuntimeError,
        ) as exc:
            raise BagError(
                f"bag {str(self.path)!r} is corrupt or truncated: reading failed after {count} "
                f"messages: {type(exc).__name__}: {exc}"
            ) from None
        except Exception as exc:  # e.g. zstd/lz4 errors from a damaged chunk
            raise BagError(
                f"bag {str(self.path)!r} could not be read after {count} messages: {type(exc).__name__}: {exc}"
            ) from None

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        """rosbags message object from CDR bytes; BagError when they do not decode as ``msgtype``."""
        try:
            return self.typestore.deserialize_cdr(raw, msgtype)
        except KeyError:
            raise BagError(f"message type {msgtype} is unknown to the type store") from None
        except Exception as exc:  # malformed CDR
            raise BagError(
                f"a {msgtype} message in {str(self.path)!r} does not decode: {type(exc).__name__}: {exc}"
            ) from None

    def close(self) -> None:
        reader, self._reader = getattr(self, "_reader", None), None
        if reader is not None and reader.is_open:
            reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_reader(path: str | os.PathLike) -> BagReader:
    """Open a rosbag2 bag for reading; BagError when it is missing, corrupt or not a bag."""
    return BagReader(path)


class BagWriter:
    """A new rosbag2 bag directory (MCAP by default, or sqlite3) written with rosbags.

    ``add_topic`` registers a topic (typed from the type store, or copied from a reader's connection
    so unknown types survive); ``write`` takes raw CDR bytes or a rosbags message object.
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap", compress: bool = False):
        self.path = Path(path)
        self.typestore = make_typestore()
        if storage not in STORAGE_PLUGINS:
            raise BagError(f"unknown storage {storage!r}; use one of {', '.join(STORAGE_PLUGINS)}")
        if self.path.exists():
            raise BagError(f"output bag {str(self.path)!r} exists already; remove it or choose another path")
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=STORAGE_PLUGINS[storage])
            if compress and storage == "mcap":
                # zstd chunk compression, which `ros2 bag` and Foxglove read natively.
                self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f"cannot create bag {str(self.path)!r}: {exc}") from None
        self._conns: dict[str, Any] = {}
        self._types: dict[str, str] = {}

    def add_topic(self, topic: str, msgtype: str, *, like=None) -> None:
        """Register ``topic``; ``like`` = a reader connection to copy its definition and hash from."""
        if topic in self._conns:
            return
        kwargs: dict[str, Any] = {}
        if like is not None and getattr(like.msgdef, "data", ""):
            kwargs = dict(msgdef=like.msgdef.data, rihs01=like.digest or self._hash_or_none(msgtype))
        if not kwargs.get("rihs01"):
            kwargs = dict(typestore=self.typestore)
        try:
            self._conns[topic] = self._writer.add_connection(topic, msgtype, **kwargs)
        except (WriterError, KeyError, TypesysError) as exc:
            raise BagError(f"cannot add topic {topic!r} ({msgtype}) to {str(self.path)!r}: {exc}") from None
        self._types[topic] = msgtype

    def _hash_or_none(self, msgtype: str) -> str | None:
        try:
            return self.typestore.hash_rihs01(msgtype)
        except Exception:  # type not in our store
            return None

    def write(self, topic: str, timestamp_ns: int, data: bytes | Any) -> None:
        """Write raw CDR ``bytes`` or a message object (serialized with the topic's type)."""
        if topic not in self._conns:
            raise BagError(f"topic {topic!r} was not added to {str(self.path)!r}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            data = self.typestore.serialize_cdr(data, self._types[topic])
        self._writer.write(self._conns[topic], int(timestamp_ns), data)

    def close(self) -> None:
        writer, self._writer = getattr(self, "_writer", None), None
        if writer is not None:
            writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_writer(path: str | os.PathLike, storage: str = "mcap", compress: bool = False) -> BagWriter:
    """Create a new bag directory at ``path``; BagError if it exists or cannot be created."""
    return BagWriter(path, storage=storage, compress=compress)
