"""Problems in input files as machine output: one NDJSON object per problem on stdout.

CI steps and editors read ``validate --json`` and ``plan --json`` line by line; a problem line
carries what a person reads on stderr (file, JSON path, message, line and column when known), so
a pipeline can annotate the exact place without parsing human text. The error still goes to
stderr and the exit code stays 1: machine output adds to the contract, it does not replace it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from graphium.cli.common import emit, print_warnings
from graphium.errors import Problem, ValidationError


def problem_json(problem: Problem, severity: str) -> dict[str, Any]:
    """The fields of one problem line (``severity``: ``error`` or ``warning``)."""
    data: dict[str, Any] = {
        "severity": severity,
        "file": problem.file,
        "path": problem.path,
        "message": problem.message,
    }
    if problem.line is not None:
        data["line"] = problem.line
        data["column"] = problem.column
    return data


def emit_problems(problems: Iterable[Problem], severity: str) -> None:
    for problem in problems:
        emit("problem", problem_json(problem, severity))


@contextmanager
def problems_as_json(enabled: bool) -> Iterator[None]:
    """With ``--json``, an invalid input's problems are printed as NDJSON lines before the error
    goes on to the CLI's one error handler (stderr, exit 1)."""
    try:
        yield
    except ValidationError as exc:
        if enabled:
            emit_problems(exc.problems, "error")
        raise


def report_warnings(doc: Any, as_json: bool) -> None:
    """Warnings of a loaded stack on stderr, and with ``--json`` also as problem lines."""
    print_warnings(doc)
    if as_json:
        emit_problems(getattr(doc, "warnings", []), "warning")
