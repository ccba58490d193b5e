"""app-manifest.yml matches what the bot registers and needs."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.config import load_config
from bot.core.grammar import parse, split
from bot.slack.door import BOT_SCOPES, SLASH_COMMANDS
from commands import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((ROOT / "app-manifest.yml").read_text())


def test_slash_commands_match_the_registered_ones():
    declared = [c["command"] for c in MANIFEST["features"]["slash_commands"]]
    assert declared == list(SLASH_COMMANDS)


def test_scopes_match_what_the_door_uses():
    assert sorted(MANIFEST["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)


def test_usage_hint_examples_are_valid_commands():
    config = load_config(ROOT / "examples" / "ops.yml")
    for command in MANIFEST["features"]["slash_commands"]:
        for hint in command["usage_hint"].split("|"):
            words = split(hint)
            parsed = parse(words, REGISTRY, config)
            assert parsed.spec.name == words[0], hint  # the hint's own command, not a suggestion or alias


def test_socket_mode_and_interactivity():
    settings = MANIFEST["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert MANIFEST["features"]["bot_user"]["display_name"] == "opsbot"
