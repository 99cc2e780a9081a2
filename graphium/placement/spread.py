"""Spread placement: each instance goes to the eligible host running the fewest of the stack's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from graphium.placement.base import Board, HostState, Instance, place_on_board
from graphium.stack.models import Constraint, Host


class SpreadStrategy:
    """Fewest instances of the same container first (replicas land on distinct hosts), then
    fewest of the whole stack, then host id: balanced and deterministic."""

    def __init__(self, constraints: Sequence[Constraint] = ()) -> None:
        self.constraints = list(constraints)

    def place(
        self, instances: Sequence[Instance], hosts: Sequence[Host], current: Mapping[str, str]
    ) -> dict[str, str]:
        return place_on_board(instances, hosts, current, self.constraints, _least_loaded)


def _least_loaded(instance: Instance, board: Board) -> HostState | str | None:
    best: HostState | None = None
    best_key = (0, 0)
    name = instance.declared_name
    for state in board.eligible:  # sorted by id, so a strict "<" breaks ties by host id
        key = (state.per_container.get(name, 0), state.count)
        if (best is None or key < best_key) and board.fits(instance, state):
            best, best_key = state, key
    return best
