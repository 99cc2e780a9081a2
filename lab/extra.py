"""Extra hosts: lab hosts beyond the lab's own, for benchmarks (e.g. 10 hosts, none a test touches).

They are ordinary lab hosts (netns, engine with the test images loaded from the lab's tarball,
sshd, host key in known_hosts), but carry a mark in their run dir: the lab proper (`up` without
exact, hence every test session) neither counts nor lists them, so tests keep seeing the 3 hosts
they ask for while a benchmark drives 10. Their inventory is a file of its own
(`$STATE/inventory-extra-<N>.json`); the shared `inventory.json` is left alone.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import _lease, images
from . import hosts as _hosts
from ._proc import STATE_DIR, LabError, ensure_packages
from .hosts import LabHost, LabInfo

_LEASE = "extra"
#: At most this many hosts start at once: each dockerd start is a CPU burst on a 2-core machine.
_STARTS_AT_ONCE = 4


def inventory_path(count: int) -> Path:
    return STATE_DIR / f"inventory-extra-{count}.json"


def up(count: int) -> tuple[LabInfo, list[str]]:
    """Ensure `count` extra hosts, the next indices after the lab proper's hosts.

    Only extra hosts, so that what tests do to the lab proper's hosts meanwhile (stopping an
    engine, filling one with containers) never reaches a benchmark. Returns their info
    (inventory: a file of their own) and the ids this call had to start (the caller stops them
    with :func:`down` when done). Needs the lab proper up (its bridge, client key, image tarball).
    """
    existing = _hosts.existing_hosts()
    proper = {h.index for h in existing if not h.is_extra()}
    if not proper or not _hosts.client_key().exists():
        raise LabError("the lab is not up: bring it up first (lab.acquire_lab or python -m lab up)")
    first = max(proper) + 1
    if not 1 <= count <= 254 - _hosts.FIRST_OCTET - first:
        raise LabError(f"extra hosts must be between 1 and {254 - _hosts.FIRST_OCTET - first}")
    ensure_packages()
    wanted = [LabHost(_hosts.host_id(i), i) for i in range(first, first + count)]
    images.tarball()
    to_start = [h for h in wanted if not h.healthy()]

    def start(host: LabHost) -> None:
        _hosts.bring_up(host)
        host.extra_mark.touch()

    for host in wanted:
        if host not in to_start:
            host.extra_mark.touch()  # a leftover extra (a crashed run): reused
    with ThreadPoolExecutor(_STARTS_AT_ONCE) as pool:
        list(pool.map(start, to_start))
    _lease.acquire(_LEASE, bool(to_start))  # two benchmarks at once share them
    _hosts.write_known_hosts(
        [h for h in existing if not h.is_extra() and h.host_key.with_suffix(".pub").exists()]
    )
    path = inventory_path(count)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"hosts": [h.inventory_entry() for h in wanted]}, indent=2) + "\n")
    tmp.rename(path)
    info = _hosts.info(wanted)
    return LabInfo(
        hosts=info.hosts, inventory=path, known_hosts=info.known_hosts, ssh_key=info.ssh_key,
        ssh_user=info.ssh_user, bridge_address=info.bridge_address, registry=info.registry,
    ), [h.id for h in to_start]


def down() -> list[str]:
    """Drop this process's lease on the extra hosts; the last user of hosts some user started
    tears every extra host down. Returns the ids torn down."""
    if not _lease.release(_LEASE):
        return []
    _lease.clear(_LEASE)
    extras = [h for h in _hosts.existing_hosts() if h.is_extra()]
    with ThreadPoolExecutor(max(1, len(extras))) as pool:
        list(pool.map(_hosts.tear_down, extras))
    proper = [
        h for h in _hosts.existing_hosts() if not h.is_extra() and h.host_key.with_suffix(".pub").exists()
    ]
    if proper:
        _hosts.write_known_hosts(proper)
    return [h.id for h in extras]
