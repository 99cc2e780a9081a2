"""The multi-host lab: N hosts as network namespaces on a private bridge, each with engine and sshd.

Layout: bridge gphbr0 = 10.231.0.1/24; host i (0-based) = netns gph-<id>, veth gphv<11+i> on the
bridge, eth0 = 10.231.0.<11+i> inside. Host ids: localhost-docker, vm1, vm2, ... Persistent files
(client key, host keys, known_hosts, inventory.json, engine data roots, registry storage) live in
the state dir; sockets, pid files and exec roots in the run dir. Bring-up and teardown are
idempotent, run hosts in parallel, reuse whatever is healthy and clean stale leftovers first.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import engine as eng
from . import images
from ._proc import (
    RUN_DIR,
    STATE_DIR,
    LabError,
    ensure_packages,
    owned_pid,
    remove_tree,
    run,
    spawn,
    tcp_open,
    terminate,
    wait_for,
)

BRIDGE = "gphbr0"
BRIDGE_ADDRESS = "10.231.0.1"
PREFIX = "10.231.0"
FIRST_OCTET = 11
REGISTRY = eng.REGISTRY
SSH_USER = "root"
_NS_PREFIX = "gph-"
# Hosts talk to each other across the bridge, and to the bridge address; nothing is routed beyond.
_FORWARD_RULES = (
    ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"],
    ["FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"],
)


def _mac(octet: int) -> str:
    """Fixed MACs, so neighbour caches stay valid when a host or the bridge is recreated."""
    return f"02:67:70:68:00:{octet:02x}"


def host_id(index: int) -> str:
    return "localhost-docker" if index == 0 else f"vm{index}"


@dataclass(frozen=True)
class LabHost:
    """One lab host as tests see it."""

    id: str
    index: int

    @property
    def address(self) -> str:
        return f"{PREFIX}.{FIRST_OCTET + self.index}"

    @property
    def mac(self) -> str:
        return _mac(FIRST_OCTET + self.index)

    @property
    def netns(self) -> str:
        return _NS_PREFIX + self.id

    @property
    def veth(self) -> str:
        return f"gphv{FIRST_OCTET + self.index}"

    @property
    def engine(self) -> eng.Engine:
        return eng.Engine(self.id, netns=self.netns)

    @property
    def docker_sock(self) -> Path:
        return self.engine.sock

    @property
    def docker_url(self) -> str:
        return self.engine.url

    @property
    def zone(self) -> str:
        return chr(ord("a") + self.index % 26)

    @property
    def run_dir(self) -> Path:
        return RUN_DIR / self.id

    @property
    def host_key(self) -> Path:
        return STATE_DIR / "hosts" / self.id / "ssh_host_ed25519_key"

    @property
    def sshd_config(self) -> Path:
        return self.run_dir / "sshd_config"

    @property
    def sshd_pidfile(self) -> Path:
        return self.run_dir / "sshd.pid"

    def sshd_pid(self) -> int | None:
        return owned_pid(self.sshd_pidfile, str(self.sshd_config))

    def netns_ok(self) -> bool:
        if not Path("/run/netns", self.netns).exists():
            return False
        inner = run(["ip", "-n", self.netns, "-o", "addr", "show", "dev", "eth0", "up"], check=False).stdout
        outer = run(["ip", "-o", "link", "show", "dev", self.veth, "up"], check=False).stdout
        return f"{self.address}/24" in inner and f"master {BRIDGE}" in outer

    def sshd_ok(self) -> bool:
        return self.sshd_pid() is not None and tcp_open(self.address, 22)

    def healthy(self) -> bool:
        return self.netns_ok() and self.engine.healthy() and self.sshd_ok()

    @property
    def extra_mark(self) -> Path:
        """Present on a host brought up beyond the lab's size (see extra.py): not in its inventory."""
        return self.run_dir / "extra"

    def is_extra(self) -> bool:
        return self.extra_mark.exists()

    def inventory_entry(self) -> dict[str, Any]:
        return {
            "@id": self.id,
            "address": self.address,
            "connection": "ssh",
            "dockerHost": self.docker_url,
            "sshUser": SSH_USER,
            "sshKey": str(client_key()),
            "knownHosts": str(known_hosts()),
            "labels": {"zone": self.zone, "lab": "graphium"},
            "capacity": {"cpus": os.cpu_count() or 1, "memory": "4Gi"},
        }


@dataclass(frozen=True)
class LabInfo:
    """What tests need to reach the lab."""

    hosts: tuple[LabHost, ...]
    inventory: Path
    known_hosts: Path
    ssh_key: Path
    ssh_user: str
    bridge_address: str
    registry: str | None

    def host(self, host_id: str) -> LabHost:
        for h in self.hosts:
            if h.id == host_id:
                return h
        raise KeyError(host_id)


def client_key() -> Path:
    return STATE_DIR / "id_ed25519"


def known_hosts() -> Path:
    return STATE_DIR / "known_hosts"


def inventory_path() -> Path:
    return STATE_DIR / "inventory.json"


# --- network ------------------------------------------------------------------------------------


def _link_exists(name: str) -> bool:
    return run(["ip", "link", "show", name], check=False).returncode == 0


def _ensure_bridge() -> None:
    if not _link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "address", _mac(1), "type", "bridge"])
    if f"{BRIDGE_ADDRESS}/24" not in run(["ip", "-o", "addr", "show", "dev", BRIDGE]).stdout:
        run(["ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    # With br_netfilter loaded (dockerd loads it), bridged host-to-host traffic crosses the
    # FORWARD chain, whose policy dockerd sets to DROP.
    if shutil.which("iptables"):
        for rule in reversed(_FORWARD_RULES):
            if run(["iptables", "-C", *rule], check=False).returncode != 0:
                run(["iptables", "-I", *rule], check=False)


def _remove_bridge() -> None:
    if shutil.which("iptables"):
        for rule in _FORWARD_RULES:
            while run(["iptables", "-C", *rule], check=False).returncode == 0:
                run(["iptables", "-D", *rule], check=False)
    if _link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE], check=False)


def _remove_netns(host: LabHost) -> None:
    if Path("/run/netns", host.netns).exists():
        pids = [int(p) for p in run(["ip", "netns", "pids", host.netns], check=False).stdout.split()]
        terminate(pids, timeout=5)  # whatever still runs in the host (ssh sessions, agents): ours
        run(["ip", "netns", "del", host.netns], check=False)
    if _link_exists(host.veth):
        run(["ip", "link", "del", host.veth], check=False)


def _create_netns(host: LabHost) -> None:
    ns = host.netns
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", host.veth, "type", "veth",
         "peer", "name", "eth0", "address", host.mac, "netns", ns])
    run(["ip", "link", "set", host.veth, "master", BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{host.address}/24", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    # No default route: the bridge's /24 (hosts, registry, server on the bridge address) is all a
    # host can reach, so a lookup of a public registry fails at once instead of hanging.


def _drop_default_route(host: LabHost) -> None:
    """Repair a namespace made before hosts had no default route (kept: its engine, sshd, containers)."""
    if run(["ip", "-n", host.netns, "route", "show", "default"], check=False).stdout.strip():
        run(["ip", "-n", host.netns, "route", "del", "default"], check=False)


# --- ssh ----------------------------------------------------------------------------------------


def _keygen(path: Path, comment: str) -> None:
    if path.exists() and path.with_suffix(".pub").exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _write_sshd_config(host: LabHost) -> None:
    host.run_dir.mkdir(parents=True, exist_ok=True)
    host.sshd_config.write_text(
        "\n".join([
            f"ListenAddress {host.address}",
            "Port 22",
            f"HostKey {host.host_key}",
            f"PidFile {host.sshd_pidfile}",
            f"AuthorizedKeysFile {client_key()}.pub",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "AllowStreamLocalForwarding yes",
            "AllowTcpForwarding yes",
            "PrintMotd no",
            f"SetEnv DOCKER_HOST={host.docker_url}",
            "",
        ])
    )


def _start_sshd(host: LabHost) -> bool:
    if host.sshd_ok():
        return False
    pid = host.sshd_pid()
    if pid is not None:
        terminate([pid])
    host.sshd_pidfile.unlink(missing_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    _write_sshd_config(host)
    log = host.run_dir / "sshd.log"
    run(["nsenter", f"--net=/run/netns/{host.netns}", "/usr/sbin/sshd", "-f", str(host.sshd_config),
         "-E", str(log)])
    wait_for(lambda: host.sshd_ok(), f"sshd on {host.id}", 10, log=log)
    return True


def write_known_hosts(hosts: list[LabHost]) -> None:
    """Record the keys of `hosts` and of every extra host still up (an extra's user may be mid-run)."""
    extras = [h for h in existing_hosts() if h.is_extra() and h.host_key.with_suffix(".pub").exists()]
    lines = []
    for h in sorted({*hosts, *extras}, key=lambda h: h.index):
        key = " ".join(h.host_key.with_suffix(".pub").read_text().split()[:2])
        lines.append(f"{h.address},{h.id} {key}\n")
    tmp = known_hosts().with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.rename(known_hosts())


# --- registry -----------------------------------------------------------------------------------


_REG_DIR = RUN_DIR / "registry"
_REG_CONFIG = _REG_DIR / "config.yml"
_REG_PIDFILE = _REG_DIR / "registry.pid"


def _registry_pid() -> int | None:
    return owned_pid(_REG_PIDFILE, str(_REG_CONFIG))


def _http_get(path: str) -> tuple[int, bytes]:
    """GET from the lab registry, never through a proxy."""
    conn = http.client.HTTPConnection(BRIDGE_ADDRESS, 5000, timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def registry_ok() -> bool:
    if _registry_pid() is None:
        return False
    try:
        return _http_get("/v2/")[0] == 200
    except OSError:
        return False


def _start_registry() -> bool:
    if registry_ok():
        return False
    pid = _registry_pid()
    if pid is not None:
        terminate([pid])
    storage = STATE_DIR / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    _REG_DIR.mkdir(parents=True, exist_ok=True)
    _REG_CONFIG.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY}\n"
    )
    log = _REG_DIR / "registry.log"
    pid = spawn(["docker-registry", "serve", str(_REG_CONFIG)], log)
    _REG_PIDFILE.write_text(f"{pid}\n")
    wait_for(registry_ok, "docker-registry", 15, pid=pid, log=log)
    return True


def _registry_has(name: str) -> bool:
    repo, tag = name.rsplit(":", 1)
    try:
        status, body = _http_get(f"/v2/{repo}/tags/list")
    except OSError:
        return False
    return status == 200 and tag in (json.loads(body).get("tags") or [])


def _push_images(via: LabHost) -> None:
    """Push every test image to the registry as 10.231.0.1:5000/<name>, through one host's engine."""
    missing = [n for n in images.IMAGES if not _registry_has(n)]
    if not missing:
        return
    import docker

    api = docker.APIClient(base_url=via.docker_url, version="1.41", timeout=120)
    try:
        for name in missing:
            repo, tag = name.rsplit(":", 1)
            target = f"{REGISTRY}/{repo}"
            api.tag(name, target, tag)
            for line in api.push(target, tag, stream=True, decode=True):
                if "error" in line:
                    raise LabError(f"push {target}:{tag}: {line['error']}")
            api.remove_image(f"{target}:{tag}")  # keep only the plain tags on the host
    finally:
        api.close()


def _stop_registry() -> None:
    pid = _registry_pid()
    if pid is not None:
        terminate([pid])
    remove_tree(_REG_DIR)


# --- lab ----------------------------------------------------------------------------------------


def existing_hosts() -> list[LabHost]:
    """Hosts with anything left of them: namespace, veth, or run dir (stale or live)."""
    ids: set[str] = set()
    netns_dir = Path("/run/netns")
    if netns_dir.is_dir():
        ids |= {p.name[len(_NS_PREFIX):] for p in netns_dir.iterdir() if p.name.startswith(_NS_PREFIX)}
    if RUN_DIR.is_dir():
        ids |= {p.name for p in RUN_DIR.iterdir() if (p / "sshd_config").exists() or (p / "exec").exists()}
    ids.discard("local")
    found, index = [], 0
    while ids:
        hid = host_id(index)
        if hid in ids:
            found.append(LabHost(hid, index))
            ids.discard(hid)
        index += 1
        if index > 254 - FIRST_OCTET:
            break
    for link in run(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
        name = link.split(":")[1].strip().split("@")[0]
        if name.startswith("gphv") and name[4:].isdigit():
            idx = int(name[4:]) - FIRST_OCTET
            if idx >= 0 and all(h.index != idx for h in found):
                found.append(LabHost(host_id(idx), idx))
    return sorted(found, key=lambda h: h.index)


def bring_up(host: LabHost) -> bool:
    """Ensure one host; True if anything had to be started."""
    if host.netns_ok():
        _drop_default_route(host)
    if host.healthy():
        images.preload(host.docker_url)
        return False
    if not host.netns_ok():
        tear_down(host)  # processes inside a broken namespace cannot be trusted
        _create_netns(host)
    _keygen(host.host_key, f"graphium-lab {host.id}")
    with ThreadPoolExecutor(2) as pool:
        started_sshd = pool.submit(_start_sshd, host)
        started_engine = eng.start(host.engine)
        return started_sshd.result() or started_engine


def tear_down(host: LabHost) -> None:
    pid = host.sshd_pid()
    if pid is not None:
        terminate([pid])
    eng.stop(host.engine)
    _remove_netns(host)
    remove_tree(host.run_dir)


def up(hosts: int = 3, registry: bool = False, exact: bool = False) -> tuple[LabInfo, bool]:
    """Bring the lab up; returns its info and whether anything was started.

    With exact, hosts beyond the count are torn down; otherwise they are kept (and repaired).
    """
    if not 1 <= hosts <= 254 - FIRST_OCTET:
        raise LabError(f"hosts must be between 1 and {254 - FIRST_OCTET}")
    ensure_packages()
    existing = existing_hosts()
    if exact:
        extra = [h for h in existing if h.index >= hosts]
        with ThreadPoolExecutor(max(1, len(extra))) as pool:
            list(pool.map(tear_down, extra))
    else:  # extra hosts stay out of the lab proper, so tests never see them
        hosts = max([hosts, *(h.index + 1 for h in existing if not h.is_extra())])
    wanted = [LabHost(host_id(i), i) for i in range(hosts)]
    for host in wanted:
        host.extra_mark.unlink(missing_ok=True)  # asked for by count now: part of the lab
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    _keygen(client_key(), "graphium-lab client")
    images.tarball()  # build once before the hosts load it in parallel
    _ensure_bridge()
    with ThreadPoolExecutor(len(wanted) + 1) as pool:
        reg = pool.submit(_start_registry) if registry else None
        started = any(pool.map(bring_up, wanted))
        if reg is not None:
            started = reg.result() or started
            _push_images(wanted[0])
    write_known_hosts(wanted)
    inventory = {"hosts": [h.inventory_entry() for h in wanted]}
    tmp = inventory_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(inventory, indent=2) + "\n")
    tmp.rename(inventory_path())
    return info(wanted), started


def info(hosts: list[LabHost] | None = None) -> LabInfo:
    hosts = existing_hosts() if hosts is None else hosts
    return LabInfo(
        hosts=tuple(hosts), inventory=inventory_path(), known_hosts=known_hosts(), ssh_key=client_key(),
        ssh_user=SSH_USER, bridge_address=BRIDGE_ADDRESS, registry=REGISTRY if registry_ok() else None,
    )


def down(purge: bool = False) -> None:
    """Tear down every lab host, the registry and the bridge.

    State dir files (keys, engine data roots with their images, registry storage) are kept for a
    fast next bring-up, unless purge is set.
    """
    existing = existing_hosts()
    with ThreadPoolExecutor(len(existing) + 1) as pool:
        reg = pool.submit(_stop_registry)
        list(pool.map(tear_down, existing))
        reg.result()
    _remove_bridge()
    inventory_path().unlink(missing_ok=True)
    if purge:
        for path in (client_key(), client_key().with_suffix(".pub"), known_hosts()):
            path.unlink(missing_ok=True)
        for tree in (STATE_DIR / "hosts", STATE_DIR / "registry"):
            remove_tree(tree)
        engines = STATE_DIR / "engines"
        for path in engines.glob("*") if engines.is_dir() else ():
            if path.name.split(".")[0] != eng.LOCAL.name:
                remove_tree(path) if path.is_dir() else path.unlink(missing_ok=True)


def status() -> dict[str, Any]:
    hosts = existing_hosts()
    with ThreadPoolExecutor(max(1, len(hosts))) as pool:
        health = list(pool.map(lambda h: (h.netns_ok(), h.engine.healthy(), h.sshd_ok()), hosts))
    return {
        "bridge": _link_exists(BRIDGE),
        "registry": registry_ok(),
        "inventory": str(inventory_path()) if inventory_path().exists() else None,
        "hosts": [
            {"id": h.id, "address": h.address, "dockerHost": h.docker_url, "netns": ok[0], "engine": ok[1],
             "sshd": ok[2], "healthy": all(ok)}
            for h, ok in zip(hosts, health, strict=True)
        ],
    }


def find(host_id_: str) -> LabHost:
    for h in existing_hosts():
        if h.id == host_id_:
            return h
    raise LabError(f"no lab host {host_id_!r}")


def stop_engine(host_id_: str) -> bool:
    """Stop one host's engine, keeping its containers (like a daemon restart)."""
    return eng.stop(find(host_id_).engine)


def start_engine(host_id_: str) -> bool:
    """Start one host's engine again; its containers are kept."""
    return eng.start(find(host_id_).engine, fresh=False)
