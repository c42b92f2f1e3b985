"""deploy/k8s/base/kafka-topics/topics.yaml is what scripts/k8s_topics.py makes from the topic registry."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from services.common.kafka.faust_topics import all_topic_specs

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "k8s_topics.py"


def _script() -> ModuleType:
    pytest.importorskip("yaml")
    spec = importlib.util.spec_from_file_location("k8s_topics", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_topics_are_the_registry_s() -> None:
    script = _script()
    assert script.TOPICS_YAML.read_text() == script.render(all_topic_specs()), (
        "stale: run python scripts/k8s_topics.py"
    )


def test_a_topic_name_kubernetes_refuses_becomes_a_valid_resource_name() -> None:
    script = _script()
    assert script.resource_name("cvloop-scoring-__assignor-__leader") == "cvloop-scoring---assignor---leader"
    assert script.resource_name("predictions.raw") == "predictions.raw"
    specs = all_topic_specs()
    with pytest.raises(ValueError, match="collide"):
        script.render([*specs, specs[0].model_copy(update={"name": specs[0].name.upper()})])


def test_check_mode_fails_on_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    script = _script()
    stale = tmp_path / "topics.yaml"
    stale.write_text(script.TOPICS_YAML.read_text().replace("partitions: 6", "partitions: 5", 1))
    monkeypatch.setattr(script, "TOPICS_YAML", stale)
    monkeypatch.setattr(script, "REPO", tmp_path)
    monkeypatch.setattr(sys, "argv", ["k8s_topics.py", "--check"])
    assert script.main() == 1
