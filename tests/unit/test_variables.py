"""${VAR} substitution at plan time."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphium.errors import StackError
from graphium.stack.loader import load_stack, load_stack_data
from graphium.stack.models import StackSpec
from graphium.stack.variables import resolve_variables, substitute

DATA = Path(__file__).resolve().parents[1] / "data" / "stacks"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("x-${A}-${B}", {"A": "1", "B": "2"}, "x-1-2"),
        ("${A:-dflt}", {}, "dflt"),
        ("${A:-dflt}", {"A": ""}, "dflt"),
        ("${A:-}", {}, ""),
        ("$${A}", {"A": "1"}, "${A}"),
        ("$A and $$", {"A": "1"}, "$A and $$"),
        ("no vars", {}, "no vars"),
    ],
)
def test_substitute(text: str, env: dict[str, str], expected: str) -> None:
    assert substitute(text, env) == (expected, [])


@pytest.mark.parametrize("text", ["${1BAD}", "${A", "${}"])
def test_invalid_references(text: str) -> None:
    assert substitute(text, {"A": "1"})[1]


def _stack() -> StackSpec:
    return load_stack_data(
        {
            "@context": "https://schema.org",
            "@graph": [
                {
                    "@type": "Stack",
                    "name": "v",
                    "hasPart": [
                        {
                            "name": "a",
                            "image": "reg/${IMAGE}:${TAG:-latest}",
                            "command": ["sh", "-c", "echo ${GREETING}"],
                            "environment": {"PASSWORD": "${PW}", "LIT": "$${NOT}"},
                            "labels": {"l": "${LABEL}"},
                        }
                    ],
                }
            ],
        }
    ).stack


def test_resolve_fills_every_string() -> None:
    env = {"IMAGE": "app", "GREETING": "hi", "PW": "s3cret", "LABEL": "x"}
    container = resolve_variables(_stack(), env, "f").containers[0]
    assert container.image == "reg/app:latest"
    assert container.command == ["sh", "-c", "echo hi"]
    assert container.environment == {"PASSWORD": "s3cret", "LIT": "${NOT}"}
    assert container.labels == {"l": "x"}


def test_missing_variables_all_reported_with_paths() -> None:
    with pytest.raises(StackError) as caught:
        resolve_variables(_stack(), {"IMAGE": "app"}, "stack.jsonld")
    paths = sorted(p.path for p in caught.value.problems)
    assert paths == [
        "$.containers[0].command[2]",
        "$.containers[0].environment.PASSWORD",
        "$.containers[0].labels.l",
    ]
    assert all(p.file == "stack.jsonld" for p in caught.value.problems)
    assert "GREETING" in str(caught.value)


def test_paths_from_the_document() -> None:
    doc = load_stack(DATA / "upstream" / "microservices-multi-host.json")
    with pytest.raises(StackError) as caught:
        resolve_variables(doc.stack, {}, doc.path, path_of=doc.path_of)
    assert [p.path for p in caught.value.problems] == ['$["@graph"][0].hasPart[1].environment.JWT_SECRET']
    filled = resolve_variables(doc.stack, {"JWT_SECRET": "k"}, doc.path)
    assert filled.containers[1].environment["JWT_SECRET"] == "k"


def test_no_variables_returns_same_object() -> None:
    stack = load_stack(DATA / "upstream" / "simple-nginx.json").stack
    assert resolve_variables(stack, {}, "f") is stack
