"""A stack's bridge network on one engine: created once, removed with the stack, and repaired
when a host holds several networks of one name.

The engine's duplicate check is not atomic: concurrent creates of one name (two operators with
separate state files) can all succeed, after which every container create naming the network
fails as "ambiguous". Creates are serialised per name in this process, a create that finds it
raced another keeps the oldest network and removes its own, and an ensure that finds duplicates
already there moves their containers onto the oldest (same aliases) and removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from graphium.docker.engine import DockerEngine, _Conflict, _Missing
from graphium.docker.requests import NetworkCreate, network_create
from graphium.errors import EngineError
from graphium.plan.payloads import NetworkPayload

__all__ = ["ensure_network", "networks_named", "remove_network"]


async def networks_named(engine: DockerEngine, name: str) -> list[dict[str, Any]]:
    """Networks of exactly this name (the engine's filter matches substrings), oldest first."""
    found = await engine._call(f"looking up network {name}", lambda c: c.networks(names=[name]))
    same = [n for n in found if n.get("Name") == name]
    return sorted(same, key=lambda n: (str(n.get("Created", "")), str(n["Id"])))


def _result(engine: DockerEngine, name: str, network_id: str, *, created: bool) -> dict[str, Any]:
    return {"network": name, "networkId": network_id, "created": created, "hostId": engine.host_id}


async def _drop(engine: DockerEngine, name: str, network_id: str) -> None:
    await engine._call(f"removing network {name}", lambda c: c.remove_network(network_id))


async def ensure_network(engine: DockerEngine, payload: NetworkPayload) -> dict[str, Any]:
    """Create the stack's network unless one of that name exists; merge duplicates into the oldest."""
    request = network_create(payload)
    name = request.name
    async with engine._network_locks.setdefault(name, asyncio.Lock()):
        existing = await networks_named(engine, name)
        if existing:
            keep = str(existing[0]["Id"])
            merged = [await _merge(engine, name, keep, str(n["Id"])) for n in existing[1:]]
            result = _result(engine, name, keep, created=False)
            return {**result, "mergedDuplicates": len(merged)} if merged else result
        try:
            created = await engine._call(f"creating network {name}", lambda c: _send(c, request))
        except _Conflict:  # created concurrently
            return {"network": name, "created": False, "hostId": engine.host_id}
        mine = str(created.get("Id"))
        oldest = (await networks_named(engine, name) or [{"Id": mine}])[0]["Id"]
        if oldest != mine:
            with contextlib.suppress(EngineError):
                await _drop(engine, name, mine)
        return _result(engine, name, oldest, created=oldest == mine)


async def _merge(engine: DockerEngine, name: str, keep: str, duplicate: str) -> str:
    """Move the containers attached to ``duplicate`` onto ``keep`` (keeping their aliases), then
    remove ``duplicate``; returns its id."""
    try:
        info = await engine._call(f"inspecting network {name}", lambda c: c.inspect_network(duplicate))
    except _Missing:
        return duplicate
    for container_id in info.get("Containers") or {}:
        container = await engine.inspect_or_none(container_id)
        if container is not None:
            endpoints = (container.get("NetworkSettings") or {}).get("Networks") or {}
            aliases = list((endpoints.get(name) or {}).get("Aliases") or [])
            await _move(engine, name, container_id, duplicate, keep, aliases)
    with contextlib.suppress(_Missing):
        await _drop(engine, name, duplicate)
    return duplicate


async def _move(
    engine: DockerEngine, name: str, container_id: str, source: str, target: str, aliases: list[str]
) -> None:
    def move(client: Any) -> None:
        client.disconnect_container_from_network(container_id, source, force=True)
        client.connect_container_to_network(container_id, target, aliases=aliases or None)

    await engine._call(f"moving {container_id[:12]} off a duplicate network {name}", move)


async def remove_network(engine: DockerEngine, name: str) -> dict[str, Any]:
    """Remove the network (every one of that name, should a race have left several); one
    already absent counts as removed."""
    removed = False
    for network in await networks_named(engine, name):
        try:
            await _drop(engine, name, str(network["Id"]))
        except _Missing:
            continue
        except EngineError as exc:
            if "active endpoints" in str(exc):
                raise EngineError(
                    f"network {name} still has containers attached; remove them first", host=engine.host_id
                ) from exc
            raise
        removed = True
    return {"network": name, "removed": removed, "hostId": engine.host_id}


def _send(client: Any, request: NetworkCreate) -> dict[str, Any]:
    """POST the network request; docker-py's ``create_network`` assembles this very body."""
    body = request.body
    return cast(
        "dict[str, Any]",
        client.create_network(
            body["Name"],
            driver=body["Driver"],
            ipam=body.get("IPAM"),
            labels=body["Labels"],
            check_duplicate=body["CheckDuplicate"],
        ),
    )
