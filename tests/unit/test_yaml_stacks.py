"""Stack and inventory files in YAML: the same model as JSON, YAML 1.2 scalars, errors with line
and column (and JSON files' errors with theirs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from graphium.errors import InventoryError, Problem, StackError
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import load_stack, load_stack_text
from graphium.stack.source import Source, _parent

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "stacks"
JSON_STACKS = sorted([*(DATA / "good").glob("*.jsonld"), *(DATA / "upstream").glob("*.json")])
HEAD = '"@context": https://schema.org\n"@graph":\n  - "@type": Stack\n    name: s\n    hasPart:\n'


def _problems(text: str, name: str = "s.yaml") -> list[Problem]:
    with pytest.raises(StackError) as caught:
        load_stack_text(text, name)
    return caught.value.problems


def _one(problems: list[Problem], fragment: str) -> Problem:
    found = [p for p in problems if fragment in p.message]
    assert found, "\n".join(map(str, problems))
    return found[0]


@pytest.mark.parametrize("stack", JSON_STACKS, ids=[p.name for p in JSON_STACKS])
def test_every_json_fixture_written_as_yaml_loads_to_the_same_model(stack: Path, tmp_path: Path) -> None:
    as_yaml = tmp_path / f"{stack.stem}.yaml"
    as_yaml.write_text(yaml.safe_dump(json.loads(stack.read_text()), sort_keys=False))
    assert load_stack(as_yaml).stack == load_stack(stack).stack


def test_the_yaml_example_means_what_the_json_one_does() -> None:
    yml = load_stack(REPO / "examples" / "simple-nginx.yaml")
    assert yml.stack == load_stack(REPO / "examples" / "simple-nginx.jsonld").stack
    assert load_stack_text((REPO / "examples" / "simple-nginx.yaml").read_text(), "x.yml").stack == yml.stack


def test_yaml_1_2_scalars_no_norway_problem_no_octal_no_base_60() -> None:
    text = HEAD + (
        "      - name: a\n        image: busybox\n        restartPolicy: no\n        replicas: 010\n"
        "        environment: {A: on, B: yes, C: 1:30, D: 2024-01-01, E: 0x1F, F: 1.5}\n"
    )
    spec = load_stack_text(text, "s.yaml").stack.containers[0]
    assert spec.restart_policy.name == "no" and spec.replicas == 10
    assert spec.environment == {"A": "on", "B": "yes", "C": "1:30", "D": "2024-01-01", "E": "31", "F": "1.5"}


def test_yaml_problems_carry_line_and_column_of_what_they_are_about() -> None:
    text = HEAD + "      - name: a\n        imgae: busybox\n        replicas: many\n"
    problems = _problems(text)
    unknown = _one(problems, "unknown property 'imgae'")
    assert (unknown.line, unknown.column) == (7, 9) and "did you mean 'image'?" in unknown.message
    replicas = _one(problems, "valid integer")
    assert replicas.path.endswith("hasPart[0].replicas") and replicas.line == 8
    missing = _one(problems, "needs 'image'")
    assert (missing.line, missing.column) == (6, 9)
    assert str(unknown).startswith("s.yaml:7:9: ")


@pytest.mark.parametrize(
    ("text", "fragment", "line"),
    [
        ('@context: x\n"@graph": []\n', "quote keys that start with @", 1),
        (HEAD + "      - name: a\n        image: [unclosed\n", "invalid YAML", 8),
        (HEAD + "      - name: a\n        name: b\n        image: x\n", "given twice", 7),
        (HEAD + "      - name: a\n        image: !!binary aGVsbG8=\n", "tag", 7),
        (HEAD + "      - name: a\n        image: !!python/object:os.system x\n", "tag", 7),
        (HEAD + "      - name: a\n        image: x\n        labels: {80: web}\n", "keys must be strings", 8),
        ("a: 1\n---\nb: 2\n", "single document", 2),
        ("# nothing here\n", "no YAML document", 1),
    ],
    ids=["unquoted-at", "syntax", "duplicate-key", "binary", "python-tag", "int-key", "two-docs", "empty"],
)
def test_yaml_mistakes_are_problems_with_positions(text: str, fragment: str, line: int) -> None:
    problem = _one(_problems(text), fragment)
    assert problem.line == line and problem.column is not None and problem.file == "s.yaml"


def test_alias_bombs_are_bounded() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    problem = _one(_problems("\n".join(levels) + "\n"), "expands")
    assert problem.path == "$"


def test_merge_keys_and_anchors_work() -> None:
    text = HEAD + (
        "      - &base {name: a, image: busybox, labels: {tier: web}}\n      - <<: *base\n        name: b\n"
    )
    containers = load_stack_text(text, "s.yaml").stack.containers
    assert [c.name for c in containers] == ["a", "b"] and containers[1].labels == {"tier": "web"}


def test_json_problems_carry_line_and_column_too() -> None:
    problems = _problems(
        '{\n  "@context": "https://schema.org",\n  "@graph": [{"@type": "Stack", "name": "s",\n'
        '    "hasPart": [\n      {"name": "a", "image": "x",\n       "replicas": "many", "foo": 1}]}]\n}\n',
        "s.json",
    )
    assert (_one(problems, "valid integer").line, _one(problems, "valid integer").column) == (6, 8)
    assert (_one(problems, "'foo'").line, _one(problems, "'foo'").column) == (6, 28)


def test_a_path_never_written_takes_its_nearest_written_ancestor() -> None:
    source = Source("f", {}, lambda: {"$": (1, 1), '$["@graph"]': (2, 3), '$["@graph"][0].hasPart': (4, 5)})
    assert source.position('$["@graph"][0].hasPart[3].healthCheck.interval') == (4, 5)
    assert source.position('$["@graph"][1]') == (2, 3)
    assert _parent('$.a["b.c"]') == "$.a" and _parent('$.a["x"][2]') == '$.a["x"]' and _parent("$.a") == "$"


def test_inventory_in_yaml_and_its_problems_with_positions(tmp_path: Path) -> None:
    good = tmp_path / "hosts.yml"
    good.write_text("hosts:\n  - id: a\n    connection: ssh\n    address: 10.0.0.1\n    labels: {zone: a}\n")
    assert load_inventory(good).by_id()["a"].labels == {"zone": "a"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts:\n  - id: a\n    conection: ssh\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(bad)
    problem = _one(caught.value.problems, "conection")
    assert (problem.line, problem.column) == (3, 5) and "did you mean 'connection'?" in problem.message
