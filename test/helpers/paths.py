"""Where the repository and its virtual environment are."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("VENV", REPO / ".venv"))
