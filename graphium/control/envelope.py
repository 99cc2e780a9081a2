"""A stack as posted to the server: a bare document, or the document with its variables.

``POST /api/v1/stacks`` (and ``POST /api/v1/plans``) take either

- a bare stack document whose ``${VAR}`` the caller already filled: the server cannot tell which
  values were secrets (a password inside ``DATABASE_URL`` is not masked by value) nor record a
  version (a version keeps ``${VAR}`` as written), so that apply records none; or
- an envelope ``{"document": <the stack document as written>, "variables": {"NAME": "value"}}``:
  the server fills the variables itself at plan time, as a local apply does, so it knows the
  secret values (masked everywhere) and records the version once the apply succeeds.

The rule is exact: a body whose keys are exactly ``{"document"}`` or ``{"document", "variables"}``
and whose ``document`` is an object is an envelope; anything else is a bare document (a stack
document has ``@context``/``@graph`` keys, never only these). Values are never echoed in errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphium.errors import Problem, StackError
from graphium.stack.variables import document_variables

ENVELOPE_KEYS = (frozenset({"document"}), frozenset({"document", "variables"}))
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class PostedStack:
    """The document, and the variables to fill it with (None: a bare, already filled document)."""

    document: dict[str, Any]
    variables: dict[str, str] | None = field(default=None, repr=False)


def is_envelope(body: Any) -> bool:
    """Whether ``body`` is a ``{"document", "variables"}`` envelope (see the module's rule)."""
    return (
        isinstance(body, dict) and frozenset(body) in ENVELOPE_KEYS and isinstance(body.get("document"), dict)
    )


def posted_stack(body: dict[str, Any], file: str = "stack") -> PostedStack:
    """``body`` read by the rule above. Raises StackError (at ``$.variables...``, without the
    value) when an envelope's variables are not an object of names to strings."""
    if not is_envelope(body):
        return PostedStack(body)
    variables = body.get("variables", {})
    if not isinstance(variables, dict):
        raise StackError([Problem(file, "$.variables", "expected an object of variable names to strings")])
    problems = [
        Problem(file, f"$.variables.{name}", "expected a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        for name in variables
        if not _NAME_RE.match(str(name))
    ]
    problems += [
        Problem(file, f"$.variables.{name}", "expected a string value")
        for name, value in variables.items()
        if not isinstance(value, str)
    ]
    if problems:
        raise StackError(problems)
    return PostedStack(body["document"], dict(variables))


def envelope(document: Any, variables: Mapping[str, str]) -> dict[str, Any]:
    """The body that posts ``document`` (as written) with ``variables`` for the server to fill."""
    return {"document": document, "variables": dict(variables)}


def referenced_variables(document: Any, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables ``document`` refers to that ``environ`` sets, and no others (the rest of
    the environment stays where it is; a ``${X:-default}`` left unset takes its default)."""
    return {name: environ[name] for name in document_variables(document) if name in environ}


__all__ = ["ENVELOPE_KEYS", "PostedStack", "envelope", "is_envelope", "posted_stack", "referenced_variables"]
