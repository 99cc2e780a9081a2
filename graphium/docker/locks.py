"""A lock on the host itself: a Docker volume ``graphium-lock-<stack>`` whose labels name its owner.

Two operators with separate state files (two CI runners) never see each other's runner lease, so
an apply also takes a lock on every host it touches, as Kamal does on its primary host. Creating
a volume is atomic per name in the engine and returns the existing volume unchanged when one is
there: the owner label on what comes back tells who holds the lock. A volume cannot be renewed,
so it has no expiry: it is released at the end of the run, taken over when its holder is provably
dead (same machine, pid gone), and removed by hand with ``graphium-run unlock``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from graphium.errors import EngineError

if TYPE_CHECKING:
    from graphium.docker.engine import DockerEngine

__all__ = ["LABEL_LOCK", "LABEL_LOCK_OWNER", "lock_holder", "lock_name", "release_lock", "take_lock"]

LABEL_LOCK = "graphium.lock"  # the stack the lock is for (not graphium.stack: it is no stack volume)
LABEL_LOCK_OWNER = "graphium.lock-owner"
LABEL_LOCK_SINCE = "graphium.lock-since"


def lock_name(stack: str) -> str:
    return f"graphium-lock-{stack}"


async def _volume(engine: DockerEngine, stack: str) -> dict[str, Any] | None:
    name = lock_name(stack)
    try:
        return cast(
            "dict[str, Any]",
            await engine._call(f"inspecting lock {name}", lambda c: c.inspect_volume(name)),
        )
    except EngineError as exc:
        if "no such volume" in str(exc).lower() or "not found" in str(exc).lower():
            return None
        raise


async def take_lock(engine: DockerEngine, stack: str, owner: str) -> str | None:
    """Take the stack's lock on this host for ``owner``: None when it is ours now, else the owner
    label of whoever holds it."""
    name = lock_name(stack)
    labels = {
        LABEL_LOCK: stack,
        LABEL_LOCK_OWNER: owner,
        LABEL_LOCK_SINCE: datetime.now(UTC).isoformat(timespec="seconds"),
    }
    volume = await engine._call(f"taking lock {name}", lambda c: c.create_volume(name, labels=labels))
    if not (volume or {}).get("Labels"):
        # an engine restarted since the volume was made answers a create without its labels
        # (its driver's view); an inspect reads them from the volume store
        volume = await _volume(engine, stack)
    held = str(((volume or {}).get("Labels") or {}).get(LABEL_LOCK_OWNER) or "")
    return None if held == owner else held or "an unknown owner"


async def lock_holder(engine: DockerEngine, stack: str) -> str | None:
    """The owner label of the stack's lock on this host, or None when nobody holds it."""
    volume = await _volume(engine, stack)
    if volume is None:
        return None
    return str((volume.get("Labels") or {}).get(LABEL_LOCK_OWNER) or "an unknown owner")


async def release_lock(engine: DockerEngine, stack: str, owner: str | None) -> bool:
    """Remove the lock if ``owner`` holds it (any holder's with ``owner=None``); whether it went."""
    volume = await _volume(engine, stack)
    if volume is None:
        return False
    if owner is not None and (volume.get("Labels") or {}).get(LABEL_LOCK_OWNER) != owner:
        return False
    name = lock_name(stack)
    try:
        await engine._call(f"releasing lock {name}", lambda c: c.remove_volume(name, force=True))
    except EngineError:
        if await _volume(engine, stack) is not None:
            raise
    return True
