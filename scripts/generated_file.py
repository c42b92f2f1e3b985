"""The command line of a script that generates a committed file: writes it, or with `--check` exits 1
when the committed file is not what the script would write."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def write_or_check(description: str, target: Path, wanted: str, written: str) -> int:
    """The exit status; `written` says what was written ("6 KafkaTopics")."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed file is stale")
    args = parser.parse_args()
    if args.check:
        if not target.is_file() or target.read_text() != wanted:
            print(f"{target} is stale: run python {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    target.write_text(wanted)
    print(f"wrote {written} to {target}")
    return 0
