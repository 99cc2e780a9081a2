"""apply and destroy ask before acting, on a real terminal (a pty) only: 'yes' proceeds, anything
else cancels and touches nothing, -y skips the question, and without a TTY nothing ever asks."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import GRAPHIUM_RUN, remove_stack, stack_containers, stack_doc, unique_name, write_json
from tests.support import graphium_run as run

QUESTION = "Only 'yes' will be accepted to approve."


class Terminal:
    """``graphium-run ARGS`` with stdin, stdout and stderr on one pty, as a person runs it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [GRAPHIUM_RUN, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, **env, "COLUMNS": "200", "NO_COLOR": "1"},
            close_fds=True,
        )
        os.close(slave)
        self.output = ""

    def read_until(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline, f"no {text!r} in {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self._read()
                except OSError:  # the process closed the pty
                    assert text in self.output, f"no {text!r} in {self.output!r}"
        return self.output

    def _read(self) -> None:
        text = os.read(self.master, 4096).decode(errors="replace")
        self.output += re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text)  # styles and cursor moves

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        try:
            while select.select([self.master], [], [], 0.1)[0]:
                self._read()
        except OSError:
            pass
        os.close(self.master)
        return code


@pytest.fixture
def setup(docker_url: str, tmp_path: Path) -> Any:
    name = unique_name("conf")
    stack = write_json(
        tmp_path / "stack.json", stack_doc(name, [{"name": "web", "image": "graphium-test/web:1"}])
    )
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(tmp_path / "state.json")}
    yield name, stack, env
    remove_stack(docker_url, name)


def test_apply_on_a_terminal_asks_and_only_yes_proceeds(docker_url: str, setup: Any) -> None:
    name, stack, env = setup
    term = Terminal(["apply", str(stack)], env)
    out = term.read_until(QUESTION)
    assert out.index("Plan: 1 to create") < out.index(QUESTION)  # the plan comes first
    term.type("y")  # not "yes"
    assert term.finish() == 1
    assert "cancelled" in term.output and "nothing was changed" in term.output
    assert stack_containers(docker_url, name) == []
    assert "No stacks" in run("status", env=env).stdout

    term = Terminal(["apply", str(stack)], env)
    term.read_until(QUESTION)
    term.type("yes")
    assert term.finish() == 0, term.output
    assert [c.status for c in stack_containers(docker_url, name)] == ["running"]

    term = Terminal(["destroy", str(stack)], env)
    term.read_until("Do you really want to destroy")
    term.type("no")
    assert term.finish() == 1
    assert [c.status for c in stack_containers(docker_url, name)] == ["running"]

    term = Terminal(["destroy", str(stack), "-y"], env)
    assert term.finish() == 0, term.output
    assert QUESTION not in term.output
    assert stack_containers(docker_url, name) == []


def test_without_a_terminal_nothing_asks(docker_url: str, setup: Any) -> None:
    name, stack, env = setup
    proc = run("apply", str(stack), env=env)  # stdin is /dev/null, stdout a pipe
    assert proc.returncode == 0, proc.stderr
    assert QUESTION not in proc.stdout + proc.stderr
    assert [c.status for c in stack_containers(docker_url, name)] == ["running"]
    proc = run("destroy", str(stack), env=env)
    assert proc.returncode == 0 and QUESTION not in proc.stdout
