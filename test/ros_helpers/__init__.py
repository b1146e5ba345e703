"""Helper code for the ROS process tests: a colour-coded test model, publisher/recorder scripts (run as child
processes from HELPERS) and `ros2` CLI calls."""

from pathlib import Path

HELPERS = Path(__file__).resolve().parent  # the scripts' folder: str(HELPERS / "play_frames.py")
