"""The runner's default limits, in a module of their own: the CLI shows them in ``--help`` and
takes them as option defaults, and importing :mod:`graphium.run.runner` for that would bring in
the planner's and the store's models on every command (even ``--version``)."""

from __future__ import annotations

DEFAULT_PARALLELISM = 10  # tasks run at once, across all hosts
DEFAULT_PER_HOST = 8  # tasks run at once on one host

__all__ = ["DEFAULT_PARALLELISM", "DEFAULT_PER_HOST"]
