"""Redaction of secret values."""

from __future__ import annotations

from typing import Any

from graphium.stack.models import ContainerSpec
from graphium.stack.secrets import (
    MARKER,
    is_secret_key,
    redact,
    redact_container,
    redact_environment,
    redact_event,
    redact_payload,
    redact_text,
)

SPEC = ContainerSpec(
    name="db",
    image="postgres",
    command=["run", "--password", "hunter22"],
    environment={
        "POSTGRES_PASSWORD": "hunter22",
        "CUSTOM": "tiny-secret",
        "PLAIN": "ok",
        "API_TOKEN": "t0k3n",
    },
    sensitive=["CUSTOM"],
)


def test_secret_keys() -> None:
    assert is_secret_key("DB_PASSWORD") and is_secret_key("jwt_secret") and is_secret_key("X", ["X"])
    assert not is_secret_key("PLAIN")


def test_redact_environment() -> None:
    assert redact_environment(SPEC.environment, SPEC.sensitive) == {
        "POSTGRES_PASSWORD": MARKER,
        "CUSTOM": MARKER,
        "PLAIN": "ok",
        "API_TOKEN": MARKER,
    }


def test_redact_container_masks_every_copy() -> None:
    redacted = redact_container(SPEC)
    assert redacted.environment["PLAIN"] == "ok"
    assert "hunter22" not in redacted.model_dump_json() and "tiny-secret" not in redacted.model_dump_json()
    assert redacted.command == ["run", "--password", MARKER]
    assert SPEC.environment["POSTGRES_PASSWORD"] == "hunter22"  # pure: the input is unchanged


def test_redact_payload_and_docker_env_lists() -> None:
    payload: dict[str, Any] = {
        "spec": SPEC.dump(),
        "docker": {"Env": ["POSTGRES_PASSWORD=hunter22", "PLAIN=ok"]},
        "host": "vm1",
    }
    out = redact_payload(payload)
    text = str(out)
    assert "hunter22" not in text and "tiny-secret" not in text and "t0k3n" not in text
    assert out["docker"]["Env"] == [f"POSTGRES_PASSWORD={MARKER}", "PLAIN=ok"]
    assert out["host"] == "vm1"
    assert payload["docker"]["Env"][0] == "POSTGRES_PASSWORD=hunter22"


def test_redact_event_with_known_values() -> None:
    event = {"message": "started with hunter22", "kv": "MY_TOKEN=abc"}
    out = redact_event(event, {"hunter22"})
    assert out == {"message": f"started with {MARKER}", "kv": f"MY_TOKEN={MARKER}"}


def test_short_values_only_masked_whole() -> None:
    assert redact_text("1 and 10", {"1"}) == "1 and 10"
    assert redact_text("1", {"1"}) == MARKER
    assert redact({"environment": {"PIN_KEY": "1"}, "n": "1", "m": "11"}) == {
        "environment": {"PIN_KEY": MARKER},
        "n": MARKER,
        "m": "11",
    }
