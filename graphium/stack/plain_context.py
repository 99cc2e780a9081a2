"""JSON-LD context processing for plain contexts, without pyld (which costs ~0.2 s to import).

A stack file almost always names only the schema.org context, and graphium's own context is
applied first: both are made of plain term and prefix definitions. For such contexts this module
builds the very active context pyld builds (tests/unit/test_plain_context.py compares them on
every bundled context and on generated ones) and expands IRIs as pyld's ``_expand_iri`` does, so
the fast expansion path of :mod:`graphium.stack.jsonld` needs no pyld at all.

Anything beyond plain definitions (protected terms, keyword aliases, type coercion to an IRI,
scoped contexts, @base, @language, @import, null mappings, a context that is not bundled) makes
:func:`process` return None, and the caller hands the document to pyld.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

# A context URL -> that context document's @context value, or None when it is not bundled.
Resolver = Callable[[str], Any]

KEYWORDS = frozenset(  # pyld's
    {
        "@base",
        "@container",
        "@context",
        "@default",
        "@direction",
        "@embed",
        "@explicit",
        "@first",
        "@graph",
        "@id",
        "@import",
        "@included",
        "@index",
        "@json",
        "@language",
        "@list",
        "@nest",
        "@none",
        "@omitDefault",
        "@propagate",
        "@protected",
        "@preserve",
        "@requireAll",
        "@reverse",
        "@set",
        "@type",
        "@value",
        "@version",
        "@vocab",
    }
)
INITIAL: dict[str, Any] = {"processingMode": "json-ld-1.1", "mappings": {}}

_KEYWORD_LIKE = re.compile(r"^@[a-zA-Z]+$")
_ABSOLUTE_IRI = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*|_):[^\s]*$")
_GEN_DELIM_END = re.compile(r".*[:/\?#\[\]@]$")
_TERM_KEYS = frozenset({"@id", "@type", "@container"})
_TYPES = frozenset({"@id", "@vocab", "@json"})


class NotPlain(Exception):
    """The context uses JSON-LD that this module does not model: let pyld process it."""


def is_absolute_iri(value: str) -> bool:
    return _ABSOLUTE_IRI.match(value) is not None


def expand_iri(active: Mapping[str, Any], value: Any, *, vocab: bool = False) -> Any:
    """pyld's ``_expand_iri`` with no document base (``base=None``), outside context processing."""
    if not isinstance(value, str) or value in KEYWORDS:
        return value
    if _KEYWORD_LIKE.match(value):
        return None
    mappings = active["mappings"]
    if vocab and value in mappings:
        mapping = mappings[value]
        return None if mapping is None else mapping["@id"]
    if value.find(":") > 0:
        prefix, suffix = value.split(":", 1)
        if prefix == "_" or suffix.startswith("//"):
            return value
        mapping = mappings.get(prefix)
        if mapping and mapping["_prefix"]:
            return mapping["@id"] + suffix
        if is_absolute_iri(value):
            return value
    if vocab and "@vocab" in active:
        return active["@vocab"] + value
    return value


def process(active: Mapping[str, Any], local: Any, resolve: Resolver) -> dict[str, Any] | None:
    """The active context ``local`` makes of ``active`` (pyld's ``process_context``, less its
    ``_uuid``), or None when ``local`` is not plain."""
    contexts = local if isinstance(local, list) else [local]
    if not contexts:
        return None
    try:
        result: Mapping[str, Any] = active
        for context in contexts:
            result = _one(result, context, resolve)
    except NotPlain:
        return None
    assert isinstance(result, dict)
    return result


def _clone(active: Mapping[str, Any]) -> dict[str, Any]:
    """pyld's ``_clone_active_context`` (which does not carry processingMode or @version)."""
    if "@base" in active or "@language" in active or "previousContext" in active:
        raise NotPlain
    child: dict[str, Any] = {"mappings": dict(active["mappings"])}
    if "@vocab" in active:
        child["@vocab"] = active["@vocab"]
    return child


def _one(active: Mapping[str, Any], context: Any, resolve: Resolver) -> Mapping[str, Any]:
    if isinstance(context, str):
        context = resolve(context)
        if isinstance(context, list):
            result = active
            for item in context:
                result = _one(result, item, resolve)
            return result
    if not isinstance(context, dict):
        raise NotPlain
    result = _clone(active)
    if "@version" in context:
        if context["@version"] != 1.1 or active.get("processingMode") == "json-ld-1.0":
            raise NotPlain
        result["processingMode"] = "json-ld-1.1"
        result["@version"] = 1.1
    result["processingMode"] = result.get("processingMode", active.get("processingMode", "json-ld-1.1"))
    if "@vocab" in context:
        vocab = context["@vocab"]
        if not isinstance(vocab, str) or not is_absolute_iri(vocab):
            raise NotPlain
        result["@vocab"] = expand_iri(result, vocab, vocab=True)
    defined: dict[str, bool] = {"@version": True, "@vocab": True}
    for term in context:
        if term.startswith("@"):
            if term not in defined:
                raise NotPlain
            continue
        _define(result, context, term, defined)
    return result


def _define(active: dict[str, Any], local: Mapping[str, Any], term: str, defined: dict[str, bool]) -> None:
    """One plain term definition (pyld's ``_create_term_definition``, restricted)."""
    if term in defined:
        if defined[term]:
            return
        raise NotPlain  # a cycle: pyld reports it
    defined[term] = False
    if ":" in term or "/" in term or not term:
        raise NotPlain
    value = local[term]
    simple = isinstance(value, str)
    if simple:
        value = {"@id": value}
    if not isinstance(value, dict) or set(value) - _TERM_KEYS:
        raise NotPlain
    id_ = value.get("@id")
    if not isinstance(id_, str) or id_ == term or id_.startswith("@"):
        raise NotPlain
    active["mappings"].pop(term, None)
    iri = _expand_defining(active, local, id_, defined)
    if not isinstance(iri, str) or not is_absolute_iri(iri):
        raise NotPlain
    mapping: dict[str, Any] = {"reverse": False, "protected": False, "_prefix": False}
    mapping["_term_has_colon"] = False
    mapping["@id"] = iri
    mapping["_prefix"] = simple and (iri.startswith("_:") or _GEN_DELIM_END.match(iri) is not None)
    if "@type" in value:
        if value["@type"] not in _TYPES:
            raise NotPlain
        mapping["@type"] = value["@type"]
    if "@container" in value:
        container = value["@container"]
        container = container if isinstance(container, list) else [container]
        if container not in (["@list"], ["@set"]):
            raise NotPlain
        mapping["@container"] = container
    active["mappings"][term] = mapping
    defined[term] = True


def _expand_defining(
    active: dict[str, Any], local: Mapping[str, Any], value: str, defined: dict[str, bool]
) -> Any:
    """:func:`expand_iri` during context processing: a term or prefix the local context defines
    is defined first (vocab expansion, as for a term's @id)."""
    if _KEYWORD_LIKE.match(value):
        raise NotPlain
    if value in local and defined.get(value) is not True:
        _define(active, local, value, defined)
    if value.find(":") > 0:
        prefix, suffix = value.split(":", 1)
        if prefix != "_" and not suffix.startswith("//") and prefix in local and not defined.get(prefix):
            _define(active, local, prefix, defined)
    return expand_iri(active, value, vocab=True)
