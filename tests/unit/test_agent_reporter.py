"""The agent reporter's pure parts: reading a batch answer, and the backoff's bounds."""

from __future__ import annotations

from typing import Any

import pytest

from graphium.control.reporter import Backoff, batch_answers


def test_batch_answers_in_request_order() -> None:
    items = [{"code": 200}, {"code": 409, "detail": "lease held by another agent"}]
    assert batch_answers(items, 2) == [(200, ""), (409, "lease held by another agent")]


@pytest.mark.parametrize(
    "items",
    [None, {"code": 200}, [{"code": 200}], [{"detail": "x"}, {"code": 200}], [{"code": "ok"}, {"code": 200}]],
    ids=["none", "not-a-list", "too-few", "no-code", "code-not-a-number"],
)
def test_an_unreadable_batch_answer_fails_every_report_of_the_batch(items: Any) -> None:
    assert batch_answers(items, 2) == [(502, "the server answered an unreadable batch result")] * 2


def test_backoff_doubles_up_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    for attempt, delay in enumerate(delays):
        ceiling = min(1.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 0.1
