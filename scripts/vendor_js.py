"""Re-fetches the JavaScript the web app vendors (services/api/web/static/vendor/) from npm by name and
version with `npm pack`, and checks each file against its pinned sha256 before it replaces the committed
copy: nothing is loaded from a CDN, and a changed package cannot slip in unnoticed.

`python scripts/vendor_js.py` fetches and writes; `--check` only compares the committed files with the pins
(what tests/unit/test_vendor_js.py does without the network).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENDOR = REPO / "services" / "api" / "web" / "static" / "vendor"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    folder: str  # under VENDOR
    files: dict[str, str]  # path inside the npm tarball's `package/` -> sha256

    def target(self, inner: str) -> Path:
        return VENDOR / self.folder / Path(inner).name


PACKAGES = [
    Package(
        "uplot",
        "1.6.32",
        "uplot",
        {
            "dist/uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
            "dist/uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
            "LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
        },
    ),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mismatches() -> list[str]:
    """The committed files that are missing or differ from their pin."""
    wrong = []
    for package in PACKAGES:
        for inner, pinned in package.files.items():
            path = package.target(inner)
            if not path.exists() or sha256(path.read_bytes()) != pinned:
                wrong.append(str(path.relative_to(VENDOR)))
    return wrong


def fetch(package: Package) -> None:
    """`npm pack name@version` into a temporary folder; every pinned file checked before any is written."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            ["npm", "pack", f"{package.name}@{package.version}", "--silent"],
            cwd=scratch,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (tarball,) = Path(scratch).glob("*.tgz")
        contents = {}
        with tarfile.open(tarball) as archive:
            for inner, pinned in package.files.items():
                member = archive.extractfile(f"package/{inner}")
                if member is None:
                    raise SystemExit(f"{package.name}@{package.version} has no {inner}")
                data = member.read()
                if sha256(data) != pinned:
                    raise SystemExit(f"{package.name}@{package.version} {inner}: sha256 differs from its pin")
                contents[inner] = data
    for inner, data in contents.items():
        path = package.target(inner)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare the committed files with the pins")
    if not parser.parse_args().check:
        for package in PACKAGES:
            fetch(package)
    wrong = mismatches()
    if wrong:
        sys.exit(f"not as pinned: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
