"""The rule that tells a posted envelope ``{"document", "variables"}`` from a bare stack document."""

from __future__ import annotations

from typing import Any

import pytest

from graphium.control.envelope import envelope, is_envelope, posted_stack, referenced_variables
from graphium.errors import StackError

DOC: dict[str, Any] = {"@context": "https://schema.org", "@graph": [{"name": "s", "image": "app:${TAG}"}]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"document": DOC}, True),
        ({"document": DOC, "variables": {"TAG": "1"}}, True),
        (DOC, False),
        ({"document": DOC, "variables": {}, "extra": 1}, False),  # other keys: a bare document
        ({"document": "not an object"}, False),
        ({"variables": {}}, False),
        ({}, False),
    ],
)
def test_envelope_detection(body: dict[str, Any], expected: bool) -> None:
    assert is_envelope(body) is expected
    posted = posted_stack(body)
    assert posted.variables is None if not expected else posted.document is DOC


def test_bad_variables_are_refused_at_their_path_without_their_value() -> None:
    with pytest.raises(StackError) as exc:
        posted_stack({"document": DOC, "variables": {"TAG": 1, "bad name": "sekrit"}})
    paths = {p.path for p in exc.value.problems}
    assert paths == {"$.variables.TAG", "$.variables.bad name"}
    assert "sekrit" not in str(exc.value)
    with pytest.raises(StackError, match=r"\$\.variables"):
        posted_stack({"document": DOC, "variables": ["TAG"]})


def test_only_referenced_variables_are_sent() -> None:
    doc = {"a": ["x ${TAG} ${DB_PASSWORD}", {"b": "${TAG}${UNSET:-d} $${LITERAL}"}], "n": 3}
    environ = {"TAG": "2", "DB_PASSWORD": "pw", "HOME": "/root", "LITERAL": "no"}
    assert referenced_variables(doc, environ) == {"TAG": "2", "DB_PASSWORD": "pw"}
    assert envelope(doc, {"TAG": "2"}) == {"document": doc, "variables": {"TAG": "2"}}
    assert "variables" not in repr(posted_stack(envelope(doc, {"TAG": "2"})))  # values stay out of repr
