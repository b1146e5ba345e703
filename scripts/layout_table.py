"""Print the boundary table of pose_classifier_ros/layout.py as Markdown, or write it into docs/architecture.md.

    python scripts/layout_table.py           print the table
    python scripts/layout_table.py --write   replace the table in docs/architecture.md (between its markers)

test/test_layout.py fails while the docs and layout.py disagree; edit layout.py, then run --write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
sys.path.insert(0, str(REPO))

from pose_classifier_ros.layout import TABLE_BEGIN, TABLE_END, markdown_table  # noqa: E402


def replace_table(text: str) -> str:
    """`text` with the block from TABLE_BEGIN to TABLE_END replaced by the current table."""
    start, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC}: no layout table markers ({TABLE_BEGIN!r} ... {TABLE_END!r})")
    return text[:start] + markdown_table() + text[end + len(TABLE_END) :].removeprefix("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"replace the table in {DOC.relative_to(REPO)}")
    args = parser.parse_args(argv)
    if not args.write:
        print(markdown_table(), end="")
        return 0
    try:
        text = DOC.read_text()
        new = replace_table(text)
    except (OSError, ValueError) as exc:
        print(f"layout_table: {exc}", file=sys.stderr)
        return 1
    if new != text:
        DOC.write_text(new)
        print(f"updated {DOC.relative_to(REPO)}")
    else:
        print(f"{DOC.relative_to(REPO)} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
