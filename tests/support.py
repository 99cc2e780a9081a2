"""Builders and helpers shared by the test modules (stacks, ports, containers on an engine).

Tests on the shared lab must not collide with each other, with concurrent sessions, or with what
``make demo`` leaves deployed: they use stack names of their own and host ports nothing answers
on, and they only ever look at (and clean up) containers of their own stacks.
"""

from __future__ import annotations

import copy
import random
import socket
import uuid
from typing import Any


def unique_name(prefix: str) -> str:
    """A stack (or container) name no other test, session or demo uses: ``prefix`` + 6 hex digits."""
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def port_free(address: str, port: int) -> bool:
    """True if nothing accepts a TCP connection on address:port."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) != 0


def free_port_on(*addresses: str, avoid: frozenset[int] = frozenset()) -> int:
    """A port nothing answers on at any of ``addresses`` (a lab host's ports are not this machine's)."""
    for _ in range(50):
        port = random.randint(20000, 39999)
        if port not in avoid and all(port_free(address, port) for address in addresses):
            return port
    raise RuntimeError(f"no free port found on {', '.join(addresses)}")


def stack_node(document: dict[str, Any]) -> dict[str, Any]:
    """The stack node of a stack document (the ``@graph`` node with ``hasPart``)."""
    graph = document.get("@graph", [document])
    found: dict[str, Any] = next(n for n in graph if isinstance(n, dict) and "hasPart" in n)
    return found


def with_own_name_and_ports(
    document: dict[str, Any], name: str, addresses: list[str]
) -> tuple[dict[str, Any], dict[str, int]]:
    """A copy of a stack document under ``name``, every published host port replaced by one free on
    all ``addresses``; returns the copy and each container's new host port (first port only)."""
    doc = copy.deepcopy(document)
    stack = stack_node(doc)
    stack["name"] = name
    if isinstance(stack.get("@id"), str):
        stack["@id"] = f"stack:{name}"
    ports: dict[str, int] = {}
    for part in stack["hasPart"]:
        for mapping in part.get("containerPort", part.get("ports", [])):
            if "hostPort" in mapping:
                port = free_port_on(*addresses, avoid=frozenset(ports.values()))
                mapping["hostPort"] = port
                ports.setdefault(part["name"], port)
    return doc, ports
