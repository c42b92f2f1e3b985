import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import ValidationError

from cvloop.settings import every_env_name
from services.common.settings import Broker, Settings

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "settings_doc.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_doc", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env_names() -> list[str]:
    return sorted(every_env_name())


def test_every_setting_is_documented_in_docs_settings() -> None:
    settings_md = _script().SETTINGS_MD.read_text()
    missing = [name for name in _env_names() if f"| `{name}` |" not in settings_md]
    assert not missing


def test_docs_settings_is_what_the_settings_models_make() -> None:
    script = _script()
    assert script.SETTINGS_MD.read_text() == script.render(), "stale: run python scripts/settings_doc.py"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _env_names():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_local_defaults_follow_the_port_base(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("CVLOOP_PORT_BASE", "40000")
    clean_env.setenv("CVLOOP_STATE_DIR", str(tmp_path))
    settings = Settings()
    assert settings.database_url == "postgresql://cvloop@127.0.0.1:40000/cvloop"
    assert settings.s3_endpoint == "http://127.0.0.1:40001"
    assert (settings.triton_url, settings.triton_grpc_url) == ("127.0.0.1:40002", "127.0.0.1:40003")
    assert settings.tools_path == tmp_path / "tools"
    assert not any(settings.is_external(c) for c in ("postgres", "kafka", "s3", "triton"))


def test_url_settings_mark_components_external(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TRITON_URL", "triton.prod:8000")
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    settings = Settings()
    assert settings.is_external("triton") and settings.is_external("kafka")
    assert not settings.is_external("postgres")
    assert settings.triton_grpc_url == "triton.prod:8001"
    assert settings.kafka_bootstrap_servers == "kafka-0:9092,kafka-1:9092"


def test_local_bootstrap_is_read_from_the_state_folder(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("CVLOOP_STATE_DIR", str(tmp_path))
    settings = Settings()
    with pytest.raises(RuntimeError, match="cvloop up"):
        _ = settings.kafka_bootstrap_servers
    settings.kafka_bootstrap_file.parent.mkdir()
    settings.kafka_bootstrap_file.write_text("127.0.0.1:39092\n")
    assert settings.kafka_bootstrap_servers == "127.0.0.1:39092"


def test_bad_port_base_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CVLOOP_PORT_BASE", "80")
    with pytest.raises(ValueError, match="CVLOOP_PORT_BASE"):
        Settings()


def test_the_broker_is_the_local_tansu_unless_told_or_an_address_names_another(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert Settings().kafka_broker is Broker.TANSU and Settings().runs_tansu
    clean_env.setenv("CVLOOP_KAFKA_BROKER", "mock")
    assert Settings().kafka_broker is Broker.MOCK and not Settings().runs_tansu
    clean_env.delenv("CVLOOP_KAFKA_BROKER")
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092")
    assert Settings().kafka_broker is Broker.KAFKA and not Settings().runs_tansu
    clean_env.setenv("CVLOOP_KAFKA_BROKER", "tansu")  # a second process on a local tansu
    assert Settings().runs_tansu
    clean_env.delenv("KAFKA_BOOTSTRAP_SERVERS")
    clean_env.setenv("CVLOOP_KAFKA_BROKER", "kafka")
    with pytest.raises(ValidationError, match="KAFKA_BOOTSTRAP_SERVERS"):
        Settings()
