#!/usr/bin/env python3
"""Photograph every page of the review page into docs/screenshots/: runs the browser tests (which start
their own api, ingest, scoring, serving, pipeline and job runner on Postgres, the broker, S3 and
tritonserver, fill them with the digits data and let the pipeline train) with CVLOOP_SCREENSHOTS_DIR
pointing there. Run it after scripts/test.sh has installed .venv and chromium;
extra arguments go to pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "docs" / "screenshots"


def main() -> int:
    FOLDER.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"CVLOOP_SCREENSHOTS_DIR": str(FOLDER)}
    command = [str(ROOT / ".venv" / "bin" / "pytest"), "tests/browser", "-q", *sys.argv[1:]]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
