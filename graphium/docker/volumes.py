"""Named volumes on a Docker engine: listing them, and creating and removing a stack's own.

A mixin of :class:`~graphium.docker.engine.DockerEngine` (which provides ``_call``, the one door
to docker-py's client on the engine's worker threads, with errors translated). A stack's volume
``data`` is the Docker volume ``<stack>-data``, labelled like the stack's containers, so that
two stacks on one host never share data by accident and ``destroy --volumes`` removes exactly
the stack's own; an ``external`` volume is only mounted, never created nor removed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import docker.errors

from graphium.errors import EngineError
from graphium.plan.model import LABEL_MANAGED, LABEL_STACK, LABEL_VOLUME, ObservedVolume
from graphium.plan.payloads import VolumePayload

__all__ = ["VolumeOps", "observed_volume"]

_T = TypeVar("_T")


def observed_volume(summary: dict[str, Any]) -> ObservedVolume:
    """A volume as ``GET /volumes`` lists it; its stack only when graphium manages it."""
    labels = summary.get("Labels") or {}
    stack = labels.get(LABEL_STACK) if labels.get(LABEL_MANAGED) == "true" else None
    return ObservedVolume(
        name=str(summary["Name"]), stack=stack, driver=str(summary.get("Driver") or "local")
    )


class VolumeOps:
    """The volume calls of a Docker engine adapter."""

    host_id: str

    async def _call(self, what: str, fn: Callable[[Any], _T]) -> _T:
        raise NotImplementedError  # DockerEngine's

    async def list_volumes(self) -> list[ObservedVolume]:
        """Every volume on the host (one call), sorted by name."""
        answer = await self._call("listing volumes", lambda c: c.volumes())
        found = [observed_volume(v) for v in (answer or {}).get("Volumes") or []]
        return sorted(found, key=lambda v: v.name)

    async def ensure_volume(self, payload: VolumePayload) -> dict[str, Any]:
        """Create the stack's volume unless one of that name exists (then it is used as it is)."""
        name = payload.name
        labels = {LABEL_MANAGED: "true", LABEL_STACK: payload.stack, LABEL_VOLUME: payload.volume}

        def ensure(c: Any) -> bool:
            try:
                c.inspect_volume(name)
                return False
            except docker.errors.NotFound:
                c.create_volume(name=name, driver=payload.driver or "local", labels=labels)
                return True

        created = await self._call(f"creating volume {name}", ensure)
        return {"volume": name, "created": created, "hostId": self.host_id}

    async def remove_volume(self, name: str) -> dict[str, Any]:
        """Remove the volume; one already absent counts as removed; one in use is an error."""

        def remove(c: Any) -> bool:
            try:
                c.remove_volume(name)
                return True
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise EngineError(
                        f"volume {name} is still in use by a container; remove that container first",
                        host=self.host_id,
                    ) from exc
                raise

        removed = await self._call(f"removing volume {name}", remove)
        return {"volume": name, "removed": removed, "hostId": self.host_id}
