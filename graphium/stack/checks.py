"""Checks a stack needs beyond each field's own validation: across its containers, and against the
inventory of hosts (duplicate names, unknown or cyclic dependencies, host ports wanted twice on a
host, secrets written in the file, host references that name no host).
"""

from __future__ import annotations

import re
from typing import Any

from graphium.errors import Problem, StackError
from graphium.graph import cycles
from graphium.stack.document import StackDocument
from graphium.stack.models import ContainerSpec, Inventory
from graphium.stack.normaliser import Loc, Normaliser
from graphium.stack.rules import check_stack_replicas

_VAR_ONLY_RE = re.compile(r"^\$\{[^}]+\}$")
# Stricter than SECRET_KEY_RE (which errs towards hiding): only warn where a literal is surely a secret.
_LITERAL_SECRET_RE = re.compile(r"PASSWORD|PASSWD|SECRET|PRIVATE_KEY|API_KEY", re.IGNORECASE)


def host_problems(doc: StackDocument, inventory: Inventory) -> list[Problem]:
    """Host references (``locatedInHost``) that name no host of the inventory."""
    known = inventory.by_id()
    names = ", ".join(sorted(known)) or "none"
    refs: list[tuple[str | None, Loc]] = [(doc.stack.located_in_host, ("locatedInHost",))]
    for index, container in enumerate(doc.stack.containers):
        refs.append((container.located_in_host, ("containers", index, "locatedInHost")))
    return [
        Problem(doc.path, doc.path_of(*loc), f"unknown host {host!r}; known hosts: {names}")
        for host, loc in refs
        if host is not None and host not in known
    ]


def check_hosts(doc: StackDocument, inventory: Inventory) -> None:
    """Raise StackError if the stack refers to hosts the inventory does not define."""
    problems = host_problems(doc, inventory)
    if problems:
        raise StackError(problems)


def warn_literal_secrets(norm: Normaliser, data: dict[str, Any], loc: Loc) -> None:
    """Warn of a secret written into the file (it should come from the environment, as ``${NAME}``)."""
    env = data.get("environment")
    if not isinstance(env, dict):
        return
    for key, value in env.items():
        if _LITERAL_SECRET_RE.search(key) and value and not _VAR_ONLY_RE.match(value):
            norm.warn(
                norm.path_of((*loc, "environment", key)),
                f"secret {key!r} is written in the file; prefer ${{{key}}} filled from the environment",
            )


def cross_checks(
    norm: Normaliser,
    raw: list[dict[str, Any] | None],
    valid: list[ContainerSpec | None],
    default_host: Any,
) -> None:
    """Problems between containers: names used twice, dependencies unknown or cyclic, host ports
    wanted twice on a host. ``raw`` are the normalised dicts (None where a container is no object),
    ``valid`` their validated specs (None where invalid)."""
    names = _unique_names(norm, raw)
    graph: dict[str, list[str]] = {}
    for index, data in enumerate(raw):
        deps = data.get("dependsOn") if data else None
        if not isinstance(deps, list):
            continue
        name = data.get("name") if data else None
        for dep_index, dep in enumerate(deps):
            if not isinstance(dep, str):
                continue
            path = norm.path_of(("containers", index, "dependsOn", dep_index))
            if dep not in names:
                known = ", ".join(names)
                norm.problem(path, f"dependsOn names unknown container {dep!r}; containers: {known}")
            elif isinstance(name, str):
                graph.setdefault(name, []).append(dep)
    for cycle in cycles(graph):
        norm.problem(
            norm.path_of(("containers", names[cycle[0]], "dependsOn")),
            f"dependency cycle: {' -> '.join(cycle)}",
        )
    port_conflicts(norm, valid, default_host)
    too_many = check_stack_replicas([spec.replicas for spec in valid if spec is not None])
    if too_many is not None:
        norm.problem(norm.path_of(("containers",)), too_many)


def _unique_names(norm: Normaliser, raw: list[dict[str, Any] | None]) -> dict[str, int]:
    """Each container name -> the index it is first used at; a name used again is a problem."""
    names: dict[str, int] = {}
    for index, data in enumerate(raw):
        name = data.get("name") if data else None
        if not isinstance(name, str):
            continue
        if name in names:
            norm.problem(
                norm.path_of(("containers", index, "name")),
                f"duplicate container name {name!r}; "
                f"first used at {norm.path_of(('containers', names[name]))}",
            )
        else:
            names[name] = index
    return names


def port_conflicts(norm: Normaliser, containers: list[ContainerSpec | None], default_host: Any) -> None:
    """Host ports wanted twice on one statically known host (locatedInHost or the stack default)."""
    taken: dict[tuple[str, int, str], list[tuple[str | None, str, str]]] = {}
    for index, spec in enumerate(containers):
        if spec is None:
            continue
        host = spec.located_in_host or (default_host if isinstance(default_host, str) else None)
        if host is None:
            continue
        for port_index, port in enumerate(spec.ports):
            if port.host_port is None:
                continue
            path = norm.path_of(("containers", index, "ports", port_index, "hostPort"))
            key = (host, port.host_port, port.protocol.value)
            ip = port.host_ip if port.host_ip not in ("", "0.0.0.0", "::") else None
            if spec.replicas > 1:
                norm.problem(
                    path,
                    f"{spec.replicas} replicas of {spec.name!r} are pinned to host {host!r} and all "
                    f"want host port {port.host_port}/{port.protocol.value}",
                )
            clash = next((p for p in taken.get(key, []) if p[0] is None or ip is None or p[0] == ip), None)
            if clash is not None:
                norm.problem(
                    path,
                    f"host port {port.host_port}/{port.protocol.value} on host {host!r} is already "
                    f"wanted by {clash[1]!r} ({clash[2]})",
                )
                continue
            taken.setdefault(key, []).append((ip, spec.name, path))
