"""Manual placement: every instance goes exactly where the stack says, or placement fails."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from graphium.placement.base import Board, HostState, Instance, place_on_board
from graphium.stack.models import Constraint, Host


class ManualStrategy:
    """``locatedInHost`` (the container's, else the stack's), else the only host there is.

    Current placements are not consulted: a manual placement must follow from the stack file
    alone, so an unpinned instance among several hosts is an error rather than a silent choice.
    """

    def __init__(self, constraints: Sequence[Constraint] = ()) -> None:
        self.constraints = list(constraints)

    def place(
        self, instances: Sequence[Instance], hosts: Sequence[Host], current: Mapping[str, str]
    ) -> dict[str, str]:
        return place_on_board(instances, hosts, current, self.constraints, _only_host, stable=False)


def _only_host(instance: Instance, board: Board) -> HostState | str | None:
    if len(board.states) != 1:
        if not board.states:
            return None
        return (
            f"no locatedInHost, and manual placement cannot choose among {len(board.states)} hosts; "
            "set locatedInHost on the container or the stack, or use placementStrategy spread or binpack"
        )
    (state,) = board.states.values()
    why = board.misfit(instance, state)
    return f"the only host, {state.id}: {why}" if why else state
