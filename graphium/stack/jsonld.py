"""Offline JSON-LD expansion of stack and inventory documents (the one module that uses pyld).

Stack files are JSON-LD, so ``image``, ``schema:image``, ``http://schema.org/image`` and
``https://schema.org/image`` all mean the same property. pyld does the real expansion (contexts,
prefixes, @vocab, keyword aliases); :mod:`graphium.stack.nodes` then walks the expanded graph
alongside the original document, so every value keeps the JSON path the user wrote.

Two contexts are bundled as package data and are the only ones ever loaded: schema.org (a
reduced copy, see ``contexts/schema.org.jsonld``) and graphium's own (``contexts/graphium.jsonld``),
which is applied to every document first. Any other remote context is refused: loading a stack
must never touch the network, and a context fetched at deploy time could silently change what a
file means.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from graphium.stack import plain_context

GRAPHIUM_CONTEXT_URL = "https://graphium.io/contexts/stack.jsonld"
SCHEMA_ORG = "http://schema.org/"
DATACENTER = "https://graphium.io/vocab/datacenter#"
DOCKER = "https://graphium.io/vocab/docker#"

# Namespaces whose terms graphium understands; a property is known by its local name in any of them.
VOCABULARIES = (SCHEMA_ORG, "https://schema.org/", DATACENTER, DOCKER)

_SCHEMA_ORG_URLS = {
    f"{scheme}://{host}{suffix}"
    for scheme in ("http", "https")
    for host in ("schema.org", "www.schema.org")
    for suffix in (
        "",
        "/",
        "/docs/jsonldcontext.json",
        "/docs/jsonldcontext.jsonld",
        "/version/latest/schemaorg-current-https.jsonld",
        "/version/latest/schemaorg-current-http.jsonld",
    )
}
BUNDLED_CONTEXTS: dict[str, str] = {
    **dict.fromkeys(sorted(_SCHEMA_ORG_URLS), "schema.org.jsonld"),
    GRAPHIUM_CONTEXT_URL: "graphium.jsonld",
    "https://graphium.io/contexts/stack": "graphium.jsonld",
}

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@cache
def _pyld() -> Any:
    """pyld's ``jsonld`` module, imported on first use: it brings requests, lxml and asyncio
    (~0.2 s of CPU), which the helpers here (JSON paths, local names) never need."""
    from pyld import jsonld

    return jsonld


class RemoteContextRefused(Exception):
    """A document names a context that is not bundled; graphium never fetches one."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"remote context {url!r} is not bundled with graphium; only the bundled contexts "
            f"(schema.org, {GRAPHIUM_CONTEXT_URL}) are allowed, loading never uses the network "
            "(inline the context's definitions instead)"
        )


@cache
def bundled_context(filename: str) -> dict[str, Any]:
    """A bundled context document, parsed once per process."""
    text = resources.files("graphium.stack.contexts").joinpath(filename).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def document_loader(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """pyld document loader that serves bundled contexts and refuses everything else."""
    filename = BUNDLED_CONTEXTS.get(url) or BUNDLED_CONTEXTS.get(url.rstrip("/"))
    if filename is None:
        raise RemoteContextRefused(url)
    return {
        "contextUrl": None,
        "documentUrl": url,
        "document": bundled_context(filename),
        "contentType": "application/ld+json",
    }


def _options() -> dict[str, Any]:
    # base None keeps relative ids such as "vm1" exactly as written instead of resolving them
    # against a made-up document URL.
    return {
        "documentLoader": document_loader,
        "expandContext": bundled_context("graphium.jsonld"),
        "base": None,
    }


def expand_reference(document: Any) -> list[dict[str, Any]]:
    """Full JSON-LD expansion with pyld, offline, graphium's context applied first."""
    result: list[dict[str, Any]] = _pyld().expand(document, _options())
    return result


def expand(document: Any) -> list[dict[str, Any]]:
    """JSON-LD expansion: the fast path when the document allows it, else pyld's.

    The fast path gives pyld's exact output (tests/unit/test_jsonld.py checks the equality on
    every fixture and on generated spellings) for documents whose active context is made of
    plain term and prefix definitions, with type coercions limited to @id, @vocab and @json
    and containers to @list/@set, and whose nodes use no keyword beyond @id, @type, plain
    @value and @list and carry no nested @context: every stack graphium's examples describe.
    Context processing itself is still pyld's (and cached); only the walk over the nodes is
    ours, about 5x faster than pyld's general algorithm on a 1,000-container stack.
    """
    fast = fast_expand(document)
    return fast if fast is not None else expand_reference(document)


class _NotFast(Exception):
    """The document uses JSON-LD the fast path does not model; use pyld's expansion."""


_FAST_CTX_KEYS = frozenset({"processingMode", "@version", "_uuid", "@vocab", "@base", "mappings"})
_FAST_TERM_KEYS = frozenset(
    {"reverse", "protected", "_prefix", "_term_has_colon", "@id", "@type", "@container"}
)


@cache
def _fast_capable(ctx: Context) -> bool:
    if set(ctx.active) - _FAST_CTX_KEYS:
        return False
    for term in ctx.active["mappings"].values():
        if term is None:
            continue
        if set(term) - _FAST_TERM_KEYS or term.get("reverse"):
            return False
        if term.get("@type", "@id") not in ("@id", "@vocab", "@json"):
            return False
        if term.get("@container", ["@set"]) not in (["@set"], ["@list"]):
            return False
        if str(term.get("@id", "")).startswith("@"):
            return False  # keyword alias
    return True


def fast_expand(document: Any) -> list[dict[str, Any]] | None:
    """pyld-identical expansion for simple documents (see :func:`expand`), or None."""
    if not isinstance(document, dict):
        return None
    try:
        ctx = graphium_context()
        if "@context" in document:
            ctx = ctx.child(document["@context"])
        if not _fast_capable(ctx):
            return None
        if "@graph" in document:
            if set(document) - {"@context", "@graph"}:
                return None
            graph = document["@graph"]
            items = graph if isinstance(graph, list) else [graph]
        else:
            items = [{k: v for k, v in document.items() if k != "@context"}]
        out = []
        for item in items:
            if not isinstance(item, dict):
                return None
            node = _fast_node(ctx, item)
            if set(node) - {"@id"}:  # pyld drops free-floating nodes
                out.append(node)
        return out
    except _NotFast:
        return None
    except _pyld().JsonLdError:
        return None


def _fast_node(ctx: Context, element: dict[str, Any]) -> dict[str, Any]:
    active = ctx.active
    node: dict[str, Any] = {}
    for key in sorted(element):
        value = element[key]
        if key == "@id":
            if not isinstance(value, str):
                raise _NotFast
            node["@id"] = plain_context.expand_iri(active, value)
            continue
        if key == "@type":
            types = value if isinstance(value, list) else [value]
            if not all(isinstance(t, str) for t in types):
                raise _NotFast
            node["@type"] = [plain_context.expand_iri(active, t, vocab=True) for t in types]
            continue
        if key.startswith("@"):
            raise _NotFast
        iri = ctx.iri(key)
        if iri is None or ":" not in iri:
            raise _NotFast  # pyld drops these with a warning; let it
        if iri.startswith("@"):
            raise _NotFast
        if value is None:
            continue
        term = active["mappings"].get(key) or {}
        coerce = term.get("@type")
        values: list[Any]
        if coerce == "@json":
            values = [{"@value": value, "@type": "@json"}]
        else:
            items = value if isinstance(value, list) else [value]
            expanded = [_fast_value(ctx, coerce, item) for item in items if item is not None]
            values = [{"@list": expanded}] if term.get("@container") == ["@list"] else expanded
        node.setdefault(iri, []).extend(values)
    return node


def _fast_value(ctx: Context, coerce: str | None, item: Any) -> Any:
    if isinstance(item, list):
        raise _NotFast
    if isinstance(item, dict):
        if "@context" in item or "@list" in item or "@set" in item:
            raise _NotFast
        if "@value" in item:
            if set(item) != {"@value"} or isinstance(item["@value"], (dict, list)) or item["@value"] is None:
                raise _NotFast
            return {"@value": item["@value"]}
        return _fast_node(ctx, item)
    if isinstance(item, str) and coerce in ("@id", "@vocab"):
        iri = plain_context.expand_iri(ctx.active, item, vocab=coerce == "@vocab")
        return {"@id": iri}
    if isinstance(item, float) and item.is_integer():
        raise _NotFast  # pyld canonicalises doubles; rare in stacks
    return {"@value": item}


def json_path(parent: str, key: str | int) -> str:
    """Extend a JSONPath the way users read it: ``$["@graph"][0].hasPart[2].ports``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _IDENT_RE.match(key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key)}]"


def json_path_of(parent: str, keys: Iterable[str | int]) -> str:
    """``parent`` extended by every key in turn (a model location made a JSON path)."""
    for key in keys:
        parent = json_path(parent, key)
    return parent


def local_name(iri: str) -> str | None:
    """The term a known vocabulary IRI stands for (``http://schema.org/image`` -> ``image``)."""
    for vocabulary in VOCABULARIES:
        if iri.startswith(vocabulary) and len(iri) > len(vocabulary):
            return iri[len(vocabulary) :]
    return None


def type_names(iris: list[str]) -> list[str]:
    """Local names of node types; unknown namespaces keep their last path/fragment segment."""
    return [local_name(iri) or re.split(r"[#/:]", iri)[-1] for iri in iris]


class Context:
    """A processed active context with memoised key -> IRI expansion (the walker's hot path)."""

    def __init__(self, active: dict[str, Any]) -> None:
        self.active = active
        self._iris: dict[str, str | None] = {}
        self._children: dict[str, Context] = {}

    def iri(self, key: str) -> str | None:
        try:
            return self._iris[key]
        except KeyError:
            pass
        expanded = plain_context.expand_iri(self.active, key, vocab=True)
        value = expanded if isinstance(expanded, str) else None
        self._iris[key] = value
        return value

    def child(self, local: Any) -> Context:
        """The context inside a node that carries its own ``@context``."""
        marker = json.dumps(local, sort_keys=True)
        if marker not in self._children:
            active = plain_context.process(self.active, local, _bundled_context_value)
            if active is None:  # more than plain definitions: pyld's general processing
                active = _pyld().JsonLdProcessor().process_context(self.active, local, _options())
            self._children[marker] = Context(active)
        return self._children[marker]


@cache
def graphium_context() -> Context:
    """graphium's own context (plain definitions: processed without pyld) over the initial one."""
    local = bundled_context("graphium.jsonld")["@context"]
    active = plain_context.process(plain_context.INITIAL, local, _bundled_context_value)
    if active is None:
        processor = _pyld().JsonLdProcessor()
        initial = processor._get_initial_context({"processingMode": "json-ld-1.1"})
        active = processor.process_context(initial, local, _options())
    return Context(active)


def _bundled_context_value(url: str) -> Any:
    """The ``@context`` of the bundled context ``url`` names, or None (not bundled)."""
    filename = BUNDLED_CONTEXTS.get(url) or BUNDLED_CONTEXTS.get(url.rstrip("/"))
    return None if filename is None else bundled_context(filename)["@context"]


def _explain(error: BaseException) -> str:
    """The most useful message in pyld's chain of wrapped errors."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, RemoteContextRefused):
            return str(seen)
        details = getattr(seen, "details", None)
        if isinstance(details, dict):
            cause = details.get("cause")
            if isinstance(cause, BaseException) and cause is not seen:
                seen = cause
                continue
        seen = seen.__cause__ or seen.__context__
    message = getattr(error, "message", None) or str(error)
    return f"invalid JSON-LD: {message}"


class InvalidJsonLd(Exception):
    """A document's JSON-LD cannot be processed (a remote context, an invalid definition)."""


def expand_in_context(document: Any, holder: Mapping[str, Any]) -> tuple[Context, list[dict[str, Any]]]:
    """The active context of the document's top-level nodes and the document's expansion.

    ``holder`` is the object carrying the top-level ``@context`` next to ``@graph`` (or an empty
    map). pyld's errors come back as :class:`InvalidJsonLd` with the most useful message.
    """
    ctx = graphium_context()
    try:
        if "@context" in holder and "@graph" in holder:
            ctx = ctx.child(holder["@context"])
        return ctx, expand(document)
    except _pyld().JsonLdError as error:
        raise InvalidJsonLd(_explain(error)) from error
