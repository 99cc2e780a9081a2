"""``graphium-run``: the command line over the library, for people and CI pipelines."""

from graphium.cli.main import cli, main

__all__ = ["cli", "main"]
