"""The runner's default limits, in a module of their own: the CLI shows them in ``--help`` and
takes them as option defaults, and importing :mod:`graphium.run.runner` for that would bring in
the planner's and the store's models on every command (even ``--version``)."""

from __future__ import annotations

# tasks at once on one host: what one engine takes without queueing its own work; hosts run side
# by side, so 10 hosts do 10 times the work at once (no global cap unless one is asked for)
DEFAULT_PER_HOST = 8
DEFAULT_PARALLELISM: int | None = None  # the cap on tasks at once across all hosts

__all__ = ["DEFAULT_PARALLELISM", "DEFAULT_PER_HOST"]
