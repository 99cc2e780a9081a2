"""Inventory: the hosts a stack can be placed on.

Hosts come from ``Host`` nodes in the stack's ``@graph`` and/or an inventory file (plain JSON
``{"hosts": [...]}`` or JSON-LD with an ``@graph`` of ``Host`` nodes). Both sources are merged;
a host defined twice must be defined identically, because silently preferring one definition
would deploy to an address the user did not expect. With no hosts at all there is one host,
``local``, on the local engine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic

from graphium.errors import InventoryError, Problem
from graphium.stack.jsonld import json_path
from graphium.stack.models import Host, Inventory
from graphium.stack.nodes import Node, node_from_json, read_graph
from graphium.stack.normaliser import Loc, Normaliser, accepted, did_you_mean
from graphium.stack.source import parse_source

LOCAL_HOST_ID = "local"

_HOST_FIELDS = accepted(
    "address", "connection", "dockerHost", "sshUser", "sshPort", "sshKey", "knownHosts", "labels", "capacity"
)


def string_map(norm: Normaliser, raw: Any, loc: Loc, path: str, what: str) -> dict[str, Any]:
    """A map of strings as written (labels, environment); numbers become strings, Docker-style."""
    norm.mark(loc, path)
    if not isinstance(raw, dict):
        norm.problem(path, f"{what} must be an object of names to strings, got {json_type(raw)}")
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        item_path = json_path(path, key)
        norm.mark((*loc, key), item_path)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            norm.problem(item_path, f"{what} values must be strings, got {json_type(value)}")
            continue
        out[key] = value if isinstance(value, str) else str(value)
    return out


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    return "an object"


def host_from_node(norm: Normaliser, node: Node, loc: Loc) -> Host | None:
    """Validate one Host node; problems (with paths) go to ``norm``."""
    norm.mark(loc, node.path)
    data: dict[str, Any] = {}
    if not node.id:
        norm.problem(node.path, "a host needs '@id', the name stacks use in locatedInHost")
    else:
        data["@id"] = node.id
        norm.mark((*loc, "@id"), json_path(node.path, "@id"))
    for key, field_ in norm.fields(node, _HOST_FIELDS, "a host").items():
        if key == "labels":
            data[key] = string_map(norm, field_.raw, (*loc, key), field_.path, "labels")
        elif key == "capacity":
            raw = field_.raw
            if isinstance(raw, dict):
                data[key] = norm.plain_json(raw, (*loc, key), field_.path)
            else:
                data[key] = norm.plain_field(field_, (*loc, key))
        else:
            data[key] = norm.plain_field(field_, (*loc, key))
    if not node.id:
        return None
    try:
        return Host.model_validate(data)
    except pydantic.ValidationError as error:
        norm.pydantic_problems(error, loc)
        return None


_INVENTORY_SHAPE = "an object with 'hosts' (an array of host objects) or an '@graph' of Host nodes"


def _shape_problem(document: Any, file: str) -> Problem | None:
    """A document that is no inventory at all: said plainly, rather than as a JSON-LD puzzle."""
    if not isinstance(document, dict):
        return Problem(file, "$", f"expected {_INVENTORY_SHAPE}, got {json_type(document)}")
    if not {"hosts", "@graph", "@type", "@id"} & set(document):
        hint = next((h for key in sorted(document) if (h := did_you_mean(key, ["hosts"]))), "")
        return Problem(
            file, "$", f"expected {_INVENTORY_SHAPE};{hint} found keys: {', '.join(sorted(document))}"
        )
    return None


def _hosts_from_document(document: Any, file: str) -> tuple[list[tuple[Host, str]], list[Problem]]:
    norm = Normaliser(file)
    hosts: list[tuple[Host, str]] = []
    shape = _shape_problem(document, file)
    if shape is not None:
        return [], [shape]
    if "hosts" in document and "@graph" not in document:
        extra = sorted(set(document) - {"hosts", "@context"})
        for key in extra:
            hint = did_you_mean(key, ["hosts"])
            norm.problem(json_path("$", key), "an inventory has only 'hosts'" + (f";{hint}" if hint else ""))
        raw_hosts = document["hosts"]
        if not isinstance(raw_hosts, list):
            norm.problem(json_path("$", "hosts"), "expected an array of hosts")
            return [], norm.problems
        for index, raw in enumerate(raw_hosts):
            path = json_path(json_path("$", "hosts"), index)
            if not isinstance(raw, dict):
                norm.problem(path, f"expected a host object, got {json_type(raw)}")
                continue
            if "id" in raw and "@id" in raw and raw["id"] != raw["@id"]:
                norm.problem(path, "'id' and '@id' differ; give one")
                continue
            node = node_from_json(raw, path)
            if node.id is None and isinstance(raw.get("id"), str):
                node.id = raw["id"]
            node.fields.pop("id", None)
            host = host_from_node(norm, node, ("hosts", index))
            if host is not None:
                hosts.append((host, path))
        return hosts, norm.problems
    graph = read_graph(document, file)
    norm.problems.extend(graph.problems)
    for index, node in enumerate(graph.nodes):
        if "Host" not in node.type_names:
            norm.problem(node.path, 'an inventory @graph holds only Host nodes ("@type": "Host")')
            continue
        host = host_from_node(norm, node, ("hosts", index))
        if host is not None:
            hosts.append((host, node.path))
    return hosts, norm.problems


def load_inventory(
    path: str | os.PathLike[str] | None,
    stack_hosts: Sequence[Host] = (),
    *,
    stack_file: str = "stack",
) -> Inventory:
    """The hosts of an inventory file merged with the stack's own Host nodes.

    Raises InventoryError listing every problem: unreadable or invalid file, invalid hosts, a
    host id defined twice in the file, or defined differently in the file and the stack.
    """
    problems: list[Problem] = []
    merged: dict[str, Host] = {}
    origin: dict[str, str] = {}
    for host in stack_hosts:
        if host.id in merged and merged[host.id] != host:
            problems.append(Problem(stack_file, "$", f"host {host.id!r} is defined twice, differently"))
        merged[host.id] = host
        origin[host.id] = f"{stack_file} (Host node)"
    if path is not None:
        file = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise InventoryError([Problem(file, "$", f"cannot read inventory: {error.strerror}")]) from None
        source, syntax = parse_source(text, file)
        if source is None:
            raise InventoryError(syntax)
        file_hosts, file_problems = _hosts_from_document(source.data, file)
        problems.extend(file_problems)
        seen: dict[str, str] = {}
        for host, host_path in file_hosts:
            if host.id in seen:
                problems.append(
                    Problem(file, host_path, f"host {host.id!r} is already defined at {seen[host.id]}")
                )
                continue
            seen[host.id] = host_path
            if host.id in merged and merged[host.id] != host:
                problems.append(
                    Problem(
                        file,
                        host_path,
                        f"host {host.id!r} is also defined in {origin[host.id]} with different "
                        "settings; define it once or identically",
                    )
                )
                continue
            merged[host.id] = host
            origin[host.id] = f"{file} at {host_path}"
        problems = source.located(problems)
    if problems:
        raise InventoryError(problems)
    if not merged:
        return Inventory(hosts=[Host.model_validate({"@id": LOCAL_HOST_ID})])
    return Inventory(hosts=sorted(merged.values(), key=lambda h: h.id))
