"""Benchmark: graphium over SSH against the floor, N lab hosts x 10 containers (issue 10).

    .venv/bin/python benchmarks/bench_ssh.py [--hosts 3,10] [--rounds 5] [--per-host 10] [--json]

Needs the lab (started here if missing, with a lease, so test sessions and this run share it).
Runs on extra lab hosts only (lab.ensure_extra_hosts: vm3, vm4, ... after the lab's own 3), which
tests never see nor touch (they stop and fill the lab's own hosts meanwhile), stopped at the end
if this run started them. A round whose phase fails is cleaned up and run again (twice at
most). Each round, for each host count,
graphium and the floor run one after the other (alternating which goes first, and which host
count goes first), on the same hosts, with the same containers (``--per-host`` per host,
``graphium-test/web:1`` preloaded, one network per host with an alias per container):

graphium, as users run it
  * cold apply, in-process: :class:`~graphium.run.deployer.Deployer` ``plan`` + ``apply`` with a
    fresh :class:`~graphium.executors.ssh.SshExecutor` (SSH connects included) and a fresh JSON
    state file; control-side CPU = this process's user+sys over it. Then destroyed (not timed).
  * cold apply, CLI: ``graphium-run apply -y -i INVENTORY --state STATE STACK`` as a subprocess
    (start-up, imports and SSH connects included); control-side CPU = the child's user+sys
    (``getrusage(RUSAGE_CHILDREN)`` around it).
  * no-op re-apply: the same command again (nothing changes; 0 tasks).
  * teardown: ``graphium-run destroy -y`` with the same inventory, state and stack.
the floor (benchmarks/_ssh_floor.py, a plain asyncssh + docker-py script, as a subprocess too)
  * cold: SSH-forward each host's Docker socket, create the network and create + start each
    container, hosts in parallel;
  * deep no-op: connect and inspect every container on every host, confirming each is as wanted;
  * teardown: remove every container and the network, hosts in parallel.
  The floor reports its own time from its first SSH connect (what the in-process path is
  compared with) and its own CPU over that span; its subprocess's wall time and user+sys are
  what the CLI is compared with.

Figures: per-round lines with the load average, then medians and the ratios graphium / floor
(ratio of the medians) against the targets: at 3 hosts cold apply <= 1.0x, no-op <= 1.2x the deep
no-op, teardown <= 1.1x, control-side CPU of cold apply <= 1.3x; at more hosts each ratio <= 1.1x
the same ratio at 3 hosts. ``--json`` prints one JSON document (per-round figures, medians,
ratios, conditions) on stdout, the human lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lab  # noqa: E402
from benchmarks import _profile  # noqa: E402
from graphium.errors import GraphiumError  # noqa: E402
from graphium.executors.ssh import SshExecutor  # noqa: E402
from graphium.run.deployer import Deployer  # noqa: E402
from graphium.stack.loader import load_stack  # noqa: E402
from graphium.stack.models import Inventory  # noqa: E402

IMAGE = "graphium-test/web:1"
CLI = str(Path(sys.executable).with_name("graphium-run"))
FLOOR = str(REPO / "benchmarks" / "_ssh_floor.py")
SITE = next(p for p in sys.path if p.endswith("site-packages"))
PYCACHE = str(Path(tempfile.gettempdir()) / "graphium-bench-pycache")
TARGETS = {
    "cold_cli": 1.0,
    "cold_inproc": 1.0,
    "noop": 1.2,
    "teardown": 1.1,
    "cpu_cli": 1.3,
    "cpu_inproc": 1.3,
}
GROWTH_TARGET = 1.1  # at more hosts: each ratio <= 1.1x the same ratio at 3 hosts
LABELS = (  # what graphium puts on its containers besides its own names (same sizes on the floor's)
    ("graphium.spec-hash", "v1:" + "0" * 20),
    (
        "graphium.spec-fields",
        json.dumps(
            {
                f: "0" * 12
                for f in (
                    "args",
                    "command",
                    "environment",
                    "healthCheck",
                    "image",
                    "labels",
                    "mounts",
                    "network",
                    "ports",
                    "resources",
                    "restartPolicy",
                    "stopTimeout",
                    "user",
                    "workingDir",
                )
            },
            separators=(",", ":"),
        ),
    ),
)
ROUNDS_KEYS = (
    "inproc_s",
    "inproc_cpu",
    "cli_s",
    "cli_cpu",
    "noop_s",
    "noop_cpu",
    "destroy_s",
    "destroy_cpu",
    "floor_s",
    "floor_inner_s",
    "floor_inner_cpu",
    "floor_cpu",
    "check_s",
    "check_cpu",
    "down_s",
    "down_cpu",
    "load",
)


class RoundFailed(Exception):
    """A phase failed (an engine restarted under it, a host overloaded): the round is run again."""


@dataclass
class Size:
    """One host count: its hosts, inventory file and figures."""

    hosts: list[lab.LabHost]
    inventory: Path
    rounds: list[dict[str, float]] = field(default_factory=list)
    stacks: set[str] = field(default_factory=set)  # this run's, for the clean-up after a failure

    @property
    def n(self) -> int:
        return len(self.hosts)


class HasId(Protocol):
    """A host of either kind (the lab's, or an inventory's): only its id matters here."""

    @property
    def id(self) -> str: ...


def stack_document(name: str, hosts: Sequence[HasId], per_host: int) -> dict[str, Any]:
    """The benchmark's stack: ``per_host`` containers pinned to each host (profile_apply.py uses it too)."""
    parts = [
        {
            "@type": "SoftwareApplication",
            "name": f"{h.id}-c{i:02}",
            "image": IMAGE,
            "locatedInHost": {"@id": h.id},
            "environment": {"INDEX": str(i)},
        }
        for h in hosts
        for i in range(per_host)
    ]
    return {
        "@context": "https://schema.org",
        "@graph": [
            {
                "@id": f"https://graphium.local/stacks/{name}",
                "@type": ["datacenter:Stack", "SoftwareApplication"],
                "name": name,
                "deployment": {"placementStrategy": "manual"},
                "hasPart": parts,
            }
        ],
    }


def floor_spec(stack: str, hosts: list[lab.LabHost], per_host: int) -> dict[str, Any]:
    """The floor's containers: graphium's names, labels, environment, network and aliases."""
    managed = {"graphium.managed": "true", "graphium.stack": stack}
    return {
        "network": f"{stack}-net",
        "network_labels": managed,
        "hosts": [
            {
                "id": h.id,
                "address": h.address,
                "user": "root",
                "key": str(lab.hosts.client_key()),
                "known_hosts": str(lab.hosts.known_hosts()),
                "docker_sock": str(h.docker_sock),
                "containers": [
                    {
                        "name": f"{stack}-{h.id}-c{i:02}",
                        "alias": f"{h.id}-c{i:02}",
                        "image": IMAGE,
                        "env": [f"INDEX={i}"],
                        "labels": {
                            **managed,
                            "graphium.container": f"{h.id}-c{i:02}",
                            "graphium.host": h.id,
                            **dict(LABELS),
                        },
                    }
                    for i in range(per_host)
                ],
            }
            for h in hosts
        ],
    }


@contextlib.contextmanager
def children_cpu() -> Iterator[list[float]]:
    """User+sys CPU of the child processes waited for inside the block (appended on exit)."""
    out: list[float] = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    yield out
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def child_env() -> dict[str, str]:
    """As users run it: with bytecode caches. This machine sets PYTHONDONTWRITEBYTECODE, which
    would recompile graphium's own modules at every start (site-packages have theirs from pip);
    the caches go to a prefix outside the tree instead."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


def warm_bytecode() -> None:
    """Compile graphium and site-packages into the cache prefix (a no-op once done)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "2", "graphium", "lab", SITE],
        cwd=REPO,
        env=child_env(),
        check=True,
    )


def timed_child(cmd: list[str], check: Callable[[str], bool] | None = None) -> tuple[float, float, str]:
    """(wall s, user+sys s, stdout) of one subprocess; exits on failure."""
    with children_cpu() as cpu:
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=child_env())
        wall = time.perf_counter() - started
    if proc.returncode != 0 or (check is not None and not check(proc.stdout)):
        raise RoundFailed(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return wall, cpu[0], proc.stdout


async def inprocess_cold(
    doc_path: Path, inventory: Inventory, state: Path, parallelism: int | None
) -> tuple[float, float]:
    """Deployer plan + apply with a fresh SshExecutor and store; then destroy (not timed)."""
    from graphium.store.json_store import JsonTaskStore

    doc = load_stack(str(doc_path))
    executor = SshExecutor()
    kwargs = {} if parallelism is None else {"parallelism": parallelism}
    deployer = Deployer(JsonTaskStore(str(state)), executor, inventory, **kwargs)  # type: ignore[arg-type]
    try:
        cpu0, started = self_cpu(), time.perf_counter()
        try:
            result = await deployer.apply(await deployer.plan(doc))
        except GraphiumError as exc:
            raise RoundFailed(f"in-process apply: {exc}") from exc
        wall, cpu = time.perf_counter() - started, self_cpu() - cpu0
        if not result.ok:
            raise RoundFailed(f"in-process apply failed: {[t.error for t in result.failed]}")
        try:
            gone = await deployer.apply(await deployer.plan_destroy(doc.stack.name))
        except GraphiumError as exc:
            raise RoundFailed(f"in-process destroy: {exc}") from exc
        if not gone.ok:
            raise RoundFailed(f"in-process destroy failed: {[t.error for t in gone.failed]}")
    finally:
        await executor.close()
    return wall, cpu


def graphium_round(
    size: Size, tmp: Path, per_host: int, parallelism: int | None, fig: dict[str, float]
) -> None:
    inventory = Inventory.model_validate(json.loads(size.inventory.read_text()))
    extra = [] if parallelism is None else ["--parallelism", str(parallelism)]
    name = f"gb{uuid.uuid4().hex[:8]}"
    size.stacks.add(name)
    doc_path = tmp / f"{name}.jsonld"
    doc_path.write_text(json.dumps(stack_document(name, size.hosts, per_host)))
    fig["inproc_s"], fig["inproc_cpu"] = asyncio.run(
        inprocess_cold(doc_path, inventory, tmp / f"{name}-inproc.json", parallelism)
    )
    base = ["-y", "-i", str(size.inventory), "--state", str(tmp / f"{name}.json"), *extra, str(doc_path)]
    fig["cli_s"], fig["cli_cpu"], _ = timed_child([CLI, "apply", *base])
    fig["noop_s"], fig["noop_cpu"], _ = timed_child(
        [CLI, "apply", *base],
        check=lambda out: "0 to create, 0 to replace" in out or "No changes" in out or "up to date" in out,
    )
    fig["destroy_s"], fig["destroy_cpu"], _ = timed_child([CLI, "destroy", *base])


def floor_round(size: Size, tmp: Path, per_host: int, fig: dict[str, float]) -> None:
    stack = f"fb{uuid.uuid4().hex[:8]}"  # as long as graphium's names
    size.stacks.add(stack)
    spec = tmp / f"{stack}.json"
    spec.write_text(json.dumps(floor_spec(stack, size.hosts, per_host)))
    for action, key in (("up", "floor"), ("check", "check"), ("down", "down")):
        wall, cpu, out = timed_child([sys.executable, FLOOR, action, str(spec)])
        fig[f"{key}_s"], fig[f"{key}_cpu"] = wall, cpu
        if action == "up":
            inner = json.loads(out.strip().splitlines()[-1])
            fig["floor_inner_s"], fig["floor_inner_cpu"] = inner["seconds"], inner["cpu_seconds"]


def ratios(med: dict[str, float]) -> dict[str, float]:
    return {
        "cold_cli": med["cli_s"] / med["floor_s"],
        "cold_inproc": med["inproc_s"] / med["floor_inner_s"],
        "noop": med["noop_s"] / med["check_s"],
        "teardown": med["destroy_s"] / med["down_s"],
        "cpu_cli": med["cli_cpu"] / med["floor_cpu"],
        "cpu_inproc": med["inproc_cpu"] / med["floor_inner_cpu"],
    }


RATIO_NAMES = {
    "cold_cli": "cold apply, CLI (graphium-run apply -y vs floor script, start-up included)",
    "cold_inproc": "cold apply, in-process (Deployer + fresh SshExecutor vs floor from its connect)",
    "noop": "no-op re-apply (graphium-run apply -y vs floor deep no-op)",
    "teardown": "teardown (graphium-run destroy -y vs floor removal)",
    "cpu_cli": "control-side CPU of cold apply, CLI process vs floor process",
    "cpu_inproc": "control-side CPU of cold apply, in-process vs floor from its connect",
}


def round_line(r: int, n: int, f: dict[str, float]) -> str:
    return (
        f"round {r + 1} {n:>2} hosts: cold cli {f['cli_s']:.2f}s/floor {f['floor_s']:.2f}s "
        f"({f['cli_s'] / f['floor_s']:.2f}x), in-process {f['inproc_s']:.2f}s/{f['floor_inner_s']:.2f}s "
        f"({f['inproc_s'] / f['floor_inner_s']:.2f}x); no-op {f['noop_s']:.2f}s/{f['check_s']:.2f}s "
        f"({f['noop_s'] / f['check_s']:.2f}x); teardown {f['destroy_s']:.2f}s/{f['down_s']:.2f}s "
        f"({f['destroy_s'] / f['down_s']:.2f}x); cpu cli {f['cli_cpu']:.2f}s/{f['floor_cpu']:.2f}s "
        f"({f['cli_cpu'] / f['floor_cpu']:.2f}x), in-process {f['inproc_cpu']:.2f}s/"
        f"{f['floor_inner_cpu']:.2f}s; load {f['load']:.1f}"
    )


def summary(sizes: list[Size], args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "conditions": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": commit(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "rounds": args.rounds,
            "per_host": args.per_host,
            "parallelism": args.parallelism or "default",
            "load_average_end": os.getloadavg(),
        },
        "sizes": {},
    }
    base: dict[str, float] | None = None
    for size in sizes:
        med = {k: statistics.median(f[k] for f in size.rounds) for k in ROUNDS_KEYS}
        rat = ratios(med)
        entry: dict[str, Any] = {"rounds": size.rounds, "medians": med, "ratios": rat}
        log("")
        loads = [f["load"] for f in size.rounds]
        log(
            f"{size.n} hosts x {args.per_host} containers, medians of {args.rounds} rounds, "
            f"load average {min(loads):.1f}-{max(loads):.1f}:"
        )
        log(
            f"  graphium: cold {med['cli_s']:.2f}s CLI / {med['inproc_s']:.2f}s in-process, "
            f"no-op {med['noop_s']:.2f}s, teardown {med['destroy_s']:.2f}s, "
            f"CPU {med['cli_cpu']:.2f}s CLI / {med['inproc_cpu']:.2f}s in-process"
        )
        log(
            f"  floor:    cold {med['floor_s']:.2f}s process / {med['floor_inner_s']:.2f}s from connect, "
            f"deep no-op {med['check_s']:.2f}s, teardown {med['down_s']:.2f}s, "
            f"CPU {med['floor_cpu']:.2f}s process / {med['floor_inner_cpu']:.2f}s from connect"
        )
        if base is None and size.n == 3:
            base = rat
        for key, value in rat.items():
            verdict = f"target <= {TARGETS[key]:.2f}x: {'met' if value <= TARGETS[key] else 'MISSED'}"
            if size.n != 3 and base is not None:
                growth = value / base[key]
                entry.setdefault("growth_vs_3_hosts", {})[key] = growth
                met = "met" if growth <= GROWTH_TARGET else "MISSED"
                verdict += f"; {growth:.2f}x the 3-host ratio (target <= {GROWTH_TARGET}x: {met})"
            log(f"  {value:5.2f}x  {RATIO_NAMES[key]}  [{verdict}]")
        out["sizes"][str(size.n)] = entry
    return out


def cleanup(size: Size) -> None:
    """Remove whatever a failed round left on the hosts (this run's stacks only)."""
    import docker

    for h in size.hosts:
        api = docker.APIClient(base_url=h.docker_url, version="1.41", timeout=60)
        try:
            for c in api.containers(all=True, filters={"label": "graphium.managed=true"}):
                if (c.get("Labels") or {}).get("graphium.stack") in size.stacks:
                    api.remove_container(c["Id"], force=True)
            for n in api.networks(filters={"label": "graphium.managed=true"}):
                if (n.get("Labels") or {}).get("graphium.stack") in size.stacks:
                    api.remove_network(n["Id"])
        except docker.errors.DockerException as exc:
            print(f"clean-up on {h.id}: {exc}", file=sys.stderr)
        finally:
            api.close()


def profile_cold(size: Size, tmp: Path, args: argparse.Namespace, log: Callable[[str], None]) -> None:
    """One CLI cold apply under a CPU profiler (then destroyed), written into --profile DIR."""
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    name = f"gb{uuid.uuid4().hex[:8]}"
    size.stacks.add(name)
    doc_path = tmp / f"{name}.jsonld"
    doc_path.write_text(json.dumps(stack_document(name, size.hosts, args.per_host)))
    argv = ["-y", "-i", str(size.inventory), "--state", str(tmp / f"{name}.json"), str(doc_path)]
    load = os.getloadavg()[0]
    summary_line = _profile.profile(["apply", *argv], out / "cold-apply.pstat", REPO, child_env())
    timed_child([CLI, "destroy", *argv])
    lines = [
        f"graphium-run apply -y (cold), {size.n} hosts x {args.per_host} containers, load {load:.1f}, "
        f"commit {commit()}; {summary_line.removeprefix('PROFILER ')} s of CPU; by cumulative CPU:",
        *_profile.top(out / "cold-apply.pstat"),
    ]
    (out / "profile-cold-apply.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        log(line)


def commit() -> str:
    git = ["git", "rev-parse", "--short", "HEAD"]
    return subprocess.run(git, capture_output=True, text=True, cwd=REPO).stdout.strip()


def make_size(info: lab.LabInfo, n: int, tmp: Path) -> Size:
    """The first n lab hosts, with an inventory file of just them."""
    hosts = list(info.hosts[:n])
    path = tmp / f"inventory-{n}.json"
    path.write_text(json.dumps({"hosts": [h.inventory_entry() for h in hosts]}, indent=2))
    return Size(hosts, path)


def run_rounds(sizes: list[Size], tmp: Path, args: argparse.Namespace, log: Callable[[str], None]) -> None:
    warm_bytecode()
    warm: dict[str, float] = {}
    graphium_round(sizes[0], tmp, args.per_host, args.parallelism, warm)  # untimed: caches, engines
    floor_round(sizes[0], tmp, args.per_host, warm)
    for r in range(args.rounds):
        order = sizes if r % 2 == 0 else sizes[::-1]  # alternate which host count goes first
        for size in order:
            fig = one_round(size, tmp, args, graphium_first=r % 2 == 0, log=log)
            size.rounds.append(fig)
            log(round_line(r, size.n, fig))


def one_round(
    size: Size, tmp: Path, args: argparse.Namespace, *, graphium_first: bool, log: Callable[[str], None]
) -> dict[str, float]:
    """Graphium and the floor on one host count, in the given order; a failed try is retried twice."""
    for attempt in range(3):
        fig: dict[str, float] = {"load": os.getloadavg()[0]}
        try:
            if not graphium_first:
                floor_round(size, tmp, args.per_host, fig)
            graphium_round(size, tmp, args.per_host, args.parallelism, fig)
            if graphium_first:
                floor_round(size, tmp, args.per_host, fig)
            return fig
        except RoundFailed as exc:
            log(f"{size.n} hosts: try {attempt + 1} failed, cleaning up and retrying: {str(exc)[-1500:]}")
            cleanup(size)
    raise SystemExit(f"{size.n} hosts: three tries failed")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", default="3", help="host counts, comma-separated (e.g. 3,10)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-host", type=int, default=10)
    parser.add_argument("--parallelism", type=int, default=None, help="graphium's (default: its own)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    parser.add_argument(
        "--profile", metavar="DIR", help="then profile one CLI cold apply at the first host count into DIR"
    )
    args = parser.parse_args()
    counts = sorted({int(c) for c in args.hosts.split(",")})

    def log(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    lab.acquire_lab(hosts=3)  # a lease: a test session ending meanwhile leaves the lab up
    started: list[str] = []
    sizes: list[Size] = []
    try:
        # extra hosts only: tests stop and fill the lab's own hosts meanwhile, never these
        info, started = lab.ensure_extra_hosts(max(counts))
        log(f"extra lab hosts {info.hosts[0].id}..{info.hosts[-1].id} ({len(started)} started by this run)")
        with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp:
            sizes = [make_size(info, n, Path(tmp)) for n in counts]
            try:
                run_rounds(sizes, Path(tmp), args, log)
                if args.profile:
                    warm_bytecode()
                    profile_cold(sizes[0], Path(tmp), args, log)
            finally:
                for size in sizes:
                    cleanup(size)
    finally:
        lab.stop_extra_hosts()
        lab.release_lab()
    if args.rounds == 0:
        return
    result = summary(sizes, args, log)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
