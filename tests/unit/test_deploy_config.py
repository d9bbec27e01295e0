"""deploy/env.example names every setting the code reads, and only those."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings

from shared import settings as settings_module

ENV_EXAMPLE = Path(__file__).parents[2] / "deploy" / "env.example"


def code_settings() -> set[str]:
    names = set()
    for value in vars(settings_module).values():
        if (
            isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value is not BaseSettings
        ):
            prefix = value.model_config.get("env_prefix", "")
            names |= {f"{prefix}{field}".upper() for field in value.model_fields}
    return names


def documented_settings() -> set[str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def test_every_setting_is_documented_in_env_example_and_nothing_else_is() -> None:
    assert documented_settings() == code_settings()
