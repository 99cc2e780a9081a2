"""Offline JSON-LD: bundled contexts only, and the fast expansion path equals pyld's."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from graphium.stack import jsonld
from graphium.stack.jsonld import (
    GRAPHIUM_CONTEXT_URL,
    RemoteContextRefused,
    document_loader,
    expand,
    expand_reference,
    fast_expand,
    json_path,
    local_name,
)
from graphium.stack.nodes import read_graph

DATA = Path(__file__).resolve().parents[1] / "data" / "stacks"


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except json.JSONDecodeError:
        return False  # the invalid-JSON fixture tests the loader, not expansion
    return True


DOCUMENTS = sorted(
    p
    for p in [*DATA.glob("upstream/*.json"), *DATA.glob("good/*.jsonld"), *DATA.glob("bad/*.jsonld")]
    if _is_json(p)
)


@pytest.mark.parametrize(
    "url",
    [
        "https://schema.org",
        "https://schema.org/",
        "http://schema.org",
        "http://schema.org/",
        "https://schema.org/docs/jsonldcontext.jsonld",
        GRAPHIUM_CONTEXT_URL,
    ],
)
def test_bundled_contexts_load_offline(url: str) -> None:
    document = document_loader(url)["document"]
    assert "@context" in document


def test_schema_org_variants_are_the_same_bundled_context() -> None:
    assert (
        document_loader("https://schema.org")["document"] is document_loader("http://schema.org/")["document"]
    )


def test_remote_context_refused_naming_url() -> None:
    with pytest.raises(RemoteContextRefused, match=r"https://example\.com/c\.jsonld.*only the bundled"):
        document_loader("https://example.com/c.jsonld")
    graph = read_graph({"@context": "https://example.com/c.jsonld", "name": "x"}, "f")
    assert graph.problems and "https://example.com/c.jsonld" in graph.problems[0].message
    assert graph.problems[0].path == '$["@context"]'


def test_nested_remote_context_refused() -> None:
    doc = {"@context": "https://schema.org", "@graph": [{"@context": "http://evil.test/x", "name": "a"}]}
    graph = read_graph(doc, "f")
    assert any("http://evil.test/x" in p.message for p in graph.problems)


def test_local_names_and_paths() -> None:
    assert local_name("http://schema.org/image") == "image"
    assert local_name("https://schema.org/image") == "image"
    assert local_name("https://graphium.io/vocab/datacenter#ports") == "ports"
    assert local_name("http://example.com/x") is None
    assert json_path(json_path(json_path("$", "@graph"), 0), "hasPart") == '$["@graph"][0].hasPart'


def test_map_fields_keep_keys_verbatim() -> None:
    odd = {"com.example/key": "1", "@weird": "2", "schema:name": "3", "a b": "4"}
    doc = {
        "@context": "https://schema.org",
        "@graph": [{"@type": "Stack", "environment": odd, "labels": odd}],
    }
    node = read_graph(doc, "f").nodes[0]
    assert node.fields["environment"].value == odd
    assert node.fields["labels"].value == odd
    # spelled as a full IRI, the graphium context does not type it @json; the walker still keeps the map
    doc2 = {"@context": "https://schema.org", "@graph": [{"@type": "Stack", "http://schema.org/labels": odd}]}
    assert read_graph(doc2, "f").nodes[0].fields["labels"].raw == odd


def test_relative_ids_stay_as_written() -> None:
    doc = {
        "@context": "https://schema.org",
        "@graph": [{"@id": "vm1", "@type": "Host", "locatedInHost": "h"}],
    }
    node = read_graph(doc, "f").nodes[0]
    assert node.id == "vm1" and node.fields["locatedInHost"].value == "h"


@pytest.mark.parametrize("path", DOCUMENTS, ids=[f"{p.parent.name}/{p.name}" for p in DOCUMENTS])
def test_fast_path_equals_pyld_on_fixtures(path: Path) -> None:
    document = json.loads(path.read_text())
    try:
        reference = expand_reference(document)
    except Exception:
        assert fast_expand(document) is None or "remote" in path.name
        return
    fast = fast_expand(document)
    assert fast is not None, "fixtures are simple documents: the fast path must take them"
    assert fast == reference


_SPELLINGS = {
    "name": ["name", "schema:name", "http://schema.org/name", "https://schema.org/name"],
    "image": ["image", "schema:image", "http://schema.org/image", "https://schema.org/image"],
    "command": ["command", "datacenter:command", "http://schema.org/command"],
    "environment": ["environment", "datacenter:environment", "schema:environment"],
    "locatedInHost": ["locatedInHost", "datacenter:locatedInHost", "schema:locatedInHost"],
}
_VALUES: dict[str, list[Any]] = {
    "name": ["web", "a:b"],
    "image": ["nginx:alpine", "nginx"],
    "command": [["sh", "-c", "sh"], "echo", [], ["a", None, "b"]],
    "environment": [{"A": "1"}, [{"name": "A", "value": "1"}], {}],
    "locatedInHost": ["vm1", {"@id": "vm1"}, "schema:Thing", ["a", "b"]],
}


def _generated_documents(count: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    contexts: list[Any] = [
        "https://schema.org",
        "http://schema.org/",
        ["https://schema.org", {"datacenter": "https://graphium.io/vocab/datacenter#"}],
        [GRAPHIUM_CONTEXT_URL, "https://schema.org", {"x": "http://example.com/"}],
    ]
    docs = []
    for _ in range(count):
        containers = []
        for _ in range(rng.randint(0, 4)):
            container: dict[str, Any] = {
                "@type": rng.choice(["Container", "datacenter:Container", "SoftwareApplication"])
            }
            for prop in rng.sample(sorted(_SPELLINGS), rng.randint(1, len(_SPELLINGS))):
                container[rng.choice(_SPELLINGS[prop])] = rng.choice(_VALUES[prop])
            if rng.random() < 0.3:
                container["ports"] = [
                    {"@type": "Port", "portNumber": rng.randint(1, 9), "protocol": "TCP"},
                    None,
                ]
            if rng.random() < 0.2:
                container["@id"] = rng.choice(["c1", "container:c1", "https://x.test/c"])
            containers.append(container)
        docs.append(
            {
                "@context": rng.choice(contexts),
                "@graph": [
                    {
                        "@type": ["datacenter:Stack", "SoftwareApplication"],
                        "name": "s",
                        "hasPart": containers,
                    },
                    {"@id": "vm1", "@type": "Host", "capacity": {"cpus": 2}},
                    {"@id": "floating"},
                ],
            }
        )
    return docs


def test_fast_path_equals_pyld_on_generated_spellings() -> None:
    for document in _generated_documents(150):
        fast = fast_expand(document)
        assert fast is not None
        assert fast == expand_reference(document), json.dumps(document)


@pytest.mark.parametrize(
    "document",
    [
        {"@context": {"@vocab": "http://schema.org/", "@language": "en"}, "name": "x"},
        {"@context": "https://schema.org", "@graph": [{"name": "x", "@reverse": {"hasPart": {"@id": "y"}}}]},
        {
            "@context": "https://schema.org",
            "@graph": [{"@context": {"n": "http://schema.org/name"}, "n": "x"}],
        },
        {"@context": {"@vocab": "http://schema.org/", "tags": {"@container": "@index"}}, "tags": {"a": "b"}},
        {"@context": {"@vocab": "http://schema.org/", "type": "@type"}, "type": "Stack"},
    ],
)
def test_exotic_documents_fall_back_to_pyld(document: dict[str, Any]) -> None:
    assert fast_expand(document) is None
    assert expand(document) == expand_reference(document)


def test_fallback_walk_keeps_values() -> None:
    doc = {
        "@context": {"@vocab": "http://schema.org/", "type": "@type"},
        "@graph": [{"type": "Stack", "name": "s", "hasPart": [{"name": "a", "image": "i"}]}],
    }
    graph = read_graph(doc, "f")
    assert not graph.problems
    stack = graph.nodes[0]
    assert stack.type_names == ["Stack"]
    part = stack.fields["hasPart"].values[0]
    assert part.fields["image"].value == "i"


def test_all_bundled_files_are_valid_json() -> None:
    for name in set(jsonld.BUNDLED_CONTEXTS.values()):
        assert "@context" in jsonld.bundled_context(name)


def test_no_network_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for document in itertools.islice(_generated_documents(5), 5):
        expand_reference(document)
    read_graph({"@context": "https://example.com/x", "name": "a"}, "f")
