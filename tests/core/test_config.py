from pathlib import Path

import pytest

from lifeboat.config import Settings
from tests.support.paths import ROOT


def test_defaults_keep_all_state_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "LIFEBOAT_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None)
    home = tmp_path / ".lifeboat"
    assert settings.resolved_home == home
    assert settings.db_url == f"sqlite:///{home / 'lifeboat.db'}"
    assert settings.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert settings.port == 8000


def test_environment_and_dotenv_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, and the environment beats .env.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@h/db")
    env_file = tmp_path / ".env"
    env_file.write_text("LIFEBOAT_PORT=9001\nMLFLOW_TRACKING_URI=http://mlflow:5000\n")
    settings = Settings(_env_file=env_file)
    assert settings.db_url == "postgresql+psycopg://u@h/db"
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.port == 9001


def test_every_setting_is_documented_in_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None) or [f"LIFEBOAT_{name.upper()}"]
        assert any(alias in example for alias in aliases), f"{name} missing from .env.example"
