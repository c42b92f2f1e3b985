"""A component that cannot start says what to do about it."""

from pathlib import Path

import pytest

from cvloop.stack import postgres
from cvloop.stack.process import StackError
from cvloop.stack.settings import StackSettings


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
