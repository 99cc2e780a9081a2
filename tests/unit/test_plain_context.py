"""The pyld-free context processing of plain contexts builds exactly pyld's active context, expands
IRIs exactly as pyld does, and declines (None) every context it does not model."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import pytest
from pyld import jsonld as pyld

from graphium.stack import jsonld, plain_context
from graphium.stack.jsonld import BUNDLED_CONTEXTS, GRAPHIUM_CONTEXT_URL


def resolve(url: str) -> Any:
    return jsonld._bundled_context_value(url)


def normal(active: Mapping[str, Any]) -> Any:
    """An active context as plain JSON, without pyld's per-process ``_uuid``."""
    return json.loads(json.dumps({k: v for k, v in dict(active).items() if k != "_uuid"}, default=dict))


def pyld_initial() -> Any:
    return pyld.JsonLdProcessor()._get_initial_context({"processingMode": "json-ld-1.1"})


def pyld_process(active: Any, local: Any) -> Any:
    return pyld.JsonLdProcessor().process_context(active, local, jsonld._options())


def graphium_active() -> dict[str, Any]:
    local = resolve(GRAPHIUM_CONTEXT_URL)
    mine = plain_context.process(plain_context.INITIAL, local, resolve)
    assert mine is not None
    return mine


def test_graphium_context_is_pyld_s() -> None:
    reference = pyld_process(pyld_initial(), resolve(GRAPHIUM_CONTEXT_URL))
    assert normal(graphium_active()) == normal(reference)


@pytest.mark.parametrize("url", sorted(BUNDLED_CONTEXTS))
def test_every_bundled_context_is_pyld_s(url: str) -> None:
    base = graphium_active()
    mine = plain_context.process(base, url, resolve)
    assert mine is not None
    assert normal(mine) == normal(pyld_process(base, url))


def _generated_context(rng: random.Random) -> dict[str, Any]:
    """Plain definitions in every form the processor models: prefixes, compact IRIs, references
    to terms defined later, redefinitions of graphium's terms, coercions, containers, @vocab."""
    terms = ["name", "image", "Stack", "schema", "ex", "ex2", "tags", "ref", "command", "datacenter"]
    context: dict[str, Any] = {}
    if rng.random() < 0.5:
        context["@vocab"] = rng.choice(["http://example.org/", "https://schema.org/"])
    if rng.random() < 0.3:
        context["@version"] = 1.1
    for term in rng.sample(terms, rng.randint(1, len(terms))):
        target = rng.choice(
            [
                "http://example.org/",
                "http://example.org/#",
                f"http://example.org/{term}",
                "ex:thing",
                "ex2:other",
                "schema:name",
                "datacenter:x",
                "ref",
            ]
        )
        if target.split(":")[0] == term or target == term:
            target = f"http://example.org/{term}"
        if rng.random() < 0.5:
            context[term] = target
        else:
            definition: dict[str, Any] = {"@id": target}
            if rng.random() < 0.5:
                definition["@type"] = rng.choice(["@id", "@vocab", "@json"])
            if rng.random() < 0.3:
                definition["@container"] = rng.choice(["@list", "@set", ["@list"]])
            context[term] = definition
    return context


def test_generated_plain_contexts_are_pyld_s() -> None:
    rng = random.Random(10)
    base = graphium_active()
    taken = 0
    for _ in range(300):
        local: Any = _generated_context(rng)
        if rng.random() < 0.3:
            local = ["https://schema.org", local]
        mine = plain_context.process(base, local, resolve)
        try:
            reference = pyld_process(base, local)
        except pyld.JsonLdError:  # cycles, IRIs that are none: declined, so that pyld reports them
            assert mine is None, json.dumps(local)
            continue
        if mine is None:
            continue
        taken += 1
        assert normal(mine) == normal(reference), json.dumps(local)
    assert taken > 150  # the generator mostly makes plain contexts: the comparison is real


@pytest.mark.parametrize(
    "local",
    [
        "https://example.com/remote.jsonld",
        {"@protected": True, "a": "http://x/"},
        {"type": "@type"},
        {"a": {"@id": "http://x/a", "@type": "http://x/T"}},
        {"a": {"@reverse": "http://x/a"}},
        {"a": {"@id": "http://x/a", "@context": {"b": "http://x/b"}}},
        {"a": None},
        {"@base": "http://x/"},
        {"@language": "en"},
        {"ex:a": "http://x/a"},
        {"a": "a"},
        {"a": {"@id": "http://x/a", "@container": "@index"}},
        {"@import": "https://schema.org"},
        [],
    ],
)
def test_contexts_beyond_plain_definitions_are_declined(local: Any) -> None:
    assert plain_context.process(graphium_active(), local, resolve) is None


def test_iri_expansion_is_pyld_s() -> None:
    processor = pyld.JsonLdProcessor()
    active = plain_context.process(graphium_active(), "https://schema.org", resolve)
    assert active is not None
    values = [
        "name", "image", "Stack", "schema:name", "datacenter:Stack", "docker:x", "http://a/b",
        "https://schema.org/name", "_:b0", "vm1", "urn:x:y", "ex:thing", "@id", "@foo", "a b",
        "rdf:type", "unknown:thing", "", ":x", "environment", "locatedInHost",
    ]  # fmt: skip
    for value in values:
        for vocab in (False, True):
            expected = processor._expand_iri(active, value, vocab=vocab, base=None)
            assert plain_context.expand_iri(active, value, vocab=vocab) == expected, (value, vocab)
