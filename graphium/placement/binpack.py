"""Binpack placement: fill the fullest host that still fits, keeping other hosts free."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from graphium.placement.base import Board, HostState, Instance, place_on_board
from graphium.stack.models import Constraint, Host


class BinpackStrategy:
    """Demand (reservations, else limits) is counted against each host's declared capacity.

    The biggest instances are placed first (first-fit decreasing packs tighter); each goes to the
    host that would be fullest after taking it, then the one running most instances, then host id.
    A host without a declared capacity counts as unlimited and empty in that dimension.
    """

    def __init__(self, constraints: Sequence[Constraint] = ()) -> None:
        self.constraints = list(constraints)

    def place(
        self, instances: Sequence[Instance], hosts: Sequence[Host], current: Mapping[str, str]
    ) -> dict[str, str]:
        return place_on_board(instances, hosts, current, self.constraints, _fullest, order=_biggest_first)


def _biggest_first(instances: list[Instance]) -> list[Instance]:
    return sorted(instances, key=lambda i: (-i.cpus, -i.memory))  # stable: ties keep stack order


def _fullest(instance: Instance, board: Board) -> HostState | str | None:
    best: HostState | None = None
    best_key = (0.0, 0)
    for state in board.eligible:  # sorted by id, so a strict ">" breaks ties by host id
        key = (state.fullness(instance), state.count)
        if (best is None or key > best_key) and board.fits(instance, state):
            best, best_key = state, key
    return best
