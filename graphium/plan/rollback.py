"""Planning a rollback: an earlier version of a stack, planned like any apply, in its old places.

The definition comes from a recorded :class:`~graphium.records.version.StackVersion`, resolved
again by the caller; the planner sees it as any desired state, so a rollback's plan shows the
same actions, reasons and field changes as an apply of that definition would.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from graphium.plan.model import ObservedHost, Plan
from graphium.plan.planner import plan_apply
from graphium.records.stack import StackRecord
from graphium.stack.models import Inventory, StackSpec


def plan_rollback(
    stack: StackSpec,
    inventory: Inventory,
    observed: Mapping[str, ObservedHost],
    stored: StackRecord | None,
    placements: Mapping[str, str],
    *,
    secret_values: Collection[str] = (),
) -> Plan:
    """The plan that brings back an earlier version of a stack (``stack``: its definition,
    resolved): each instance kept on the host the version had it on (``placements``) while that
    host is in the inventory and still fits it."""
    return plan_apply(stack, inventory, observed, stored, secret_values=secret_values, pinned=placements)


__all__ = ["plan_rollback"]
