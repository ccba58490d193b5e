"""The process's settings come from the environment (CONTRACT.md, "Environment"), names in any case."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config.settings import Settings


def test_settings_read_the_environment_and_arguments_override_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_DB", "/var/lib/opsbot/state.db")
    monkeypatch.setenv("port", "4000")  # any case
    monkeypatch.setenv("OPSBOT_SCHEDULER", "false")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2")
    monkeypatch.setenv("OPSBOT_NOT_A_SETTING", "ignored")
    settings = Settings(opsbot_config="/etc/opsbot/ops.yml")
    assert settings.opsbot_db == "/var/lib/opsbot/state.db"
    assert settings.port == 4000 and settings.opsbot_scheduler is False
    assert settings.opsbot_config == "/etc/opsbot/ops.yml"  # the argument, over the default
    assert settings.secrets() == ["xoxb-1-2"]
    assert Settings(port=5000).port == 5000  # an argument over the environment


def test_a_setting_that_is_not_of_its_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_HTTP_READ_TIMEOUT", "0")
    with pytest.raises(ValidationError, match="opsbot_http_read_timeout"):
        Settings()
    monkeypatch.delenv("OPSBOT_HTTP_READ_TIMEOUT")
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_defaults_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPSBOT_CONFIG", "OPSBOT_DB", "PORT", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
                 "SMTP_PASSWORD"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.opsbot_config, settings.opsbot_db, settings.port) == ("./ops.yml", "./opsbot.db", 3000)
    assert settings.secrets() == []
