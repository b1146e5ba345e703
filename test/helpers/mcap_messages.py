"""Reads an MCAP bag back with the independent `mcap` + `mcap_ros2` readers (not rosbags, which writes them)."""

from __future__ import annotations

from pathlib import Path

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


def read_mcap(bag_dir: Path) -> list[tuple]:
    """Every message of the one .mcap file in `bag_dir` as (topic, schema name, log_time ns, decoded message)."""
    (path,) = bag_dir.glob("*.mcap")
    out = []
    with path.open("rb") as fh:
        for schema, channel, message, decoded in make_reader(
            fh, decoder_factories=[DecoderFactory()]
        ).iter_decoded_messages():
            out.append((channel.topic, schema.name, message.log_time, decoded))
    return out
