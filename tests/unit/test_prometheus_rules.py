"""The Prometheus rules in deploy/prometheus/ as promtool reads them: they load, the example config
loads them, and the promtool unit tests of deploy/prometheus/tests/ (input series, expected alerts and
recorded values) pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.promtool import PROMETHEUS_DIR, promtool

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*_test.yml"))


def test_there_are_alert_and_recording_rules_with_unit_tests() -> None:
    assert {path.name for path in RULE_FILES} == {"alerts.yml", "recording.yml"}
    assert {path.name for path in RULE_TESTS} == {"alerts_test.yml", "recording_test.yml"}


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


def test_the_example_config_loads_every_rule_file() -> None:
    result = promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda path: path.name)
def test_promtool_test_rules(test_file: Path) -> None:
    result = promtool("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout
    assert "SUCCESS" in result.stdout
