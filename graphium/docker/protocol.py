"""The engine seam: what running a task needs from a container engine on one host.

The interpreter, the executors and the agent depend on :class:`ContainerEngine`, not on how it is
reached; :class:`~graphium.docker.engine.DockerEngine` implements it over docker-py (a local socket
or an SSH-forwarded one). Results are plain JSON-ready dicts, since they become task results.
Every failure is a :class:`~graphium.errors.GraphiumError` naming the host.
"""

from __future__ import annotations

from typing import Any, Protocol

from graphium.plan.model import DesiredContainer, ObservedHost
from graphium.plan.payloads import NetworkPayload, VolumePayload
from graphium.stack.models import PullPolicy

__all__ = ["ContainerEngine"]


class ContainerEngine(Protocol):
    """One host's container engine, in the vocabulary of graphium's plans."""

    @property
    def host_id(self) -> str:
        """The inventory id of the host this engine runs on."""
        ...

    async def server_version(self) -> str:
        """The engine's own version string (shown in the agents' list)."""
        ...

    async def observe(self, stack: str | None = None) -> ObservedHost:
        """graphium-managed containers (of ``stack``, or all) and networks, found by their labels,
        with every other container and every volume (what conflicts and volumes are planned from).

        Raises when the engine cannot be reached (executors turn that into ``ObservedHost.error``).
        """
        ...

    async def ensure_image(self, image: str, policy: PullPolicy) -> dict[str, Any]:
        """Make ``image`` present as ``policy`` says; ``{"image", "pulled"}``."""
        ...

    async def create_and_start(self, desired: DesiredContainer) -> dict[str, Any]:
        """Create and start ``desired`` (adopting its own running twin); ``{"containerId",
        "dockerName", "hostId", "adopted"}``."""
        ...

    async def wait_running_and_healthy(self, container_id: str, timeout: float) -> str:
        """Wait until running and, with a health check, healthy: ``"healthy"`` or ``"none"``."""
        ...

    async def replace(self, old_id: str, desired: DesiredContainer, timeout: float) -> dict[str, Any]:
        """Swap the container ``old_id`` for ``desired``, restoring the old one on failure."""
        ...

    async def inspect_or_none(self, name_or_id: str) -> dict[str, Any] | None:
        """The engine's inspect of a container, or None when there is none of that name or id."""
        ...

    async def rename(self, container_id: str, new_name: str) -> None:
        """Give a container another name (a running one keeps running)."""
        ...

    async def force_remove(self, name_or_id: str) -> bool:
        """Kill and remove at once; False when it was already gone."""
        ...

    async def stop(self, name_or_id: str, stop_timeout: float = 10.0) -> bool:
        """Stop gracefully; False when the container does not exist."""
        ...

    async def start(self, container_id: str) -> None:
        """Start a stopped container (a running one is left as it is)."""
        ...

    async def remove(self, name_or_id: str, stop_timeout: float = 10.0) -> bool:
        """Stop gracefully and remove; False when it was already gone (which is success)."""
        ...

    async def ensure_network(self, payload: NetworkPayload) -> dict[str, Any]:
        """Create the stack's network unless one of that name exists."""
        ...

    async def remove_network(self, name: str) -> dict[str, Any]:
        """Remove a network; one already absent counts as removed."""
        ...

    async def ensure_volume(self, payload: VolumePayload) -> dict[str, Any]:
        """Create the stack's own volume (labelled as the stack's) unless one of that name exists."""
        ...

    async def remove_volume(self, name: str) -> dict[str, Any]:
        """Remove a volume; one already absent counts as removed, one still in use fails."""
        ...

    async def close(self) -> None:
        """Release connections and threads (idempotent)."""
        ...
