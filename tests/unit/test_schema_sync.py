"""The editors' JSON Schema stays in sync with the models, and accepts what the loader accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from pydantic import BaseModel

from graphium.stack import models
from graphium.stack.loader import stack_schema

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "stacks"

# schema definition -> (model, aliases the file format adds, model fields spelled differently in files)
PAIRS: dict[str, tuple[type[BaseModel], set[str], dict[str, str]]] = {
    "Stack": (models.StackSpec, {"hasPart"}, {"containers": "hasPart"}),
    "Container": (
        models.ContainerSpec,
        {"containerPort", "environmentVariable", "volumeMounts", "volumeMount", "volumes"},
        {},
    ),
    "Port": (models.PortMapping, {"portNumber", "hostIp", "description"}, {}),
    "Mount": (models.Mount, {"name", "mountPath", "description"}, {}),
    "Resources": (models.Resources, {"cpus", "cpu", "memory"}, {}),
    "ResourceAmounts": (models.ResourceAmounts, {"cpu"}, {}),
    "HealthCheck": (models.HealthCheck, {"command", "description"}, {}),
    "UpdatePolicy": (models.UpdatePolicy, set(), {}),
    "HttpProbe": (models.HttpProbe, set(), {}),
    "TcpProbe": (models.TcpProbe, set(), {}),
    "Deployment": (models.Deployment, {"description"}, {}),
    "Network": (models.NetworkSpec, {"description"}, {}),
    "Capacity": (models.Capacity, set(), {}),
    "Host": (models.Host, {"id", "description"}, {}),
}


def _properties(definition: dict[str, Any]) -> set[str]:
    if "properties" in definition:
        return set(definition["properties"])
    found: set[str] = set()
    for option in definition.get("anyOf", []):
        found |= _properties(option)
    return found


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_every_model_field_has_a_schema_property_and_back(name: str) -> None:
    model, aliases, renamed = PAIRS[name]
    fields = {renamed.get(f.alias or n, f.alias or n) for n, f in model.model_fields.items()}
    props = _properties(stack_schema()["$defs"][name])
    assert fields - props == set(), f"model fields missing from the schema's {name}"
    assert props - fields - aliases == set(), f"schema {name} properties no model field backs"


def test_nested_definitions_cover_constraint_and_restart() -> None:
    defs = stack_schema()["$defs"]
    assert _properties(defs["Constraint"]) == set(models.Constraint.model_fields)
    assert _properties(defs["RestartPolicy"]) == {"name", "maximumRetryCount"}


def test_docs_copy_is_identical() -> None:
    package = (REPO / "graphium" / "stack" / "schema" / "stack.schema.json").read_text()
    assert (REPO / "docs" / "stack.schema.json").read_text() == package


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(stack_schema())


FILES = sorted([*DATA.glob("upstream/*.json"), *DATA.glob("good/*.jsonld")])


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example_files_valid_for_editors(path: Path) -> None:
    jsonschema.Draft202012Validator(stack_schema()).validate(json.loads(path.read_text()))
