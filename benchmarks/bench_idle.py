"""What an idle control plane costs: server CPU with 1, 10 and 100 idle long-polling agents.

    .venv/bin/python benchmarks/bench_idle.py [--window 30] [--wait 10] [--agents 1,10,100]

Starts ``graphium-run serve`` on loopback with a temporary state file, then for each count N:
N agents, each on its own host with its own agent token, long-poll the claim route exactly as
``graphium-run agent`` does (``POST /agents/{host}/claims?wait=W&start=true``, re-polling as soon
as a poll returns empty) while nothing is enqueued. The first count is one real
``graphium-run agent`` process instead (no Docker engine answers it, so it only registers, reports
that and long-polls). After a settling second, the server's CPU time (utime + stime of its
process, from /proc) is read over ``--window`` seconds, which spans several poll cycles; the
figure is the percentage of one core. The same server alone is measured first, for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from graphium.control.server.auth import create_token  # noqa: E402
from tests.support import free_port  # noqa: E402

RUNNER = [sys.executable, "-c", "from graphium.cli import main; main()"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def wait_until_up(url: str, token: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            auth = {"Authorization": f"Bearer {token}"}
            if httpx.get(f"{url}/api/v1/tasks/stats", headers=auth).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not start within 30 s")


async def poller(url: str, host: str, token: str, wait: float, stop: asyncio.Event) -> int:
    """One simulated idle agent; returns how many polls it made."""
    polls = 0
    async with httpx.AsyncClient(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=wait + 10
    ) as client:
        while not stop.is_set():
            response = await client.post(
                f"/agents/{host}/claims",
                params={"wait": wait, "max": 4, "start": "true"},
                json={"agentId": f"{host}-sim", "leaseSeconds": 30},
            )
            response.raise_for_status()
            polls += 1
    return polls


def measure(pid: int, window: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(window)
    return 100.0 * (cpu_seconds(pid) - before) / window


async def simulated(
    url: str, tokens: dict[str, str], wait: float, window: float, pid: int
) -> tuple[float, int]:
    stop = asyncio.Event()
    jobs = [asyncio.create_task(poller(url, host, token, wait, stop)) for host, token in tokens.items()]
    await asyncio.sleep(1.0)
    percent = await asyncio.to_thread(measure, pid, window)
    stop.set()
    polls = sum(await asyncio.gather(*jobs))
    return percent, polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=50.0, help="seconds of CPU measured per count")
    parser.add_argument("--wait", type=float, default=25.0, help="long-poll wait of each claim (the agent's), s")
    parser.add_argument("--agents", default="1,10,100", help="counts of idle agents")
    args = parser.parse_args()
    counts = [int(c) for c in args.agents.split(",")]
    with tempfile.TemporaryDirectory(prefix="graphium-bench-idle-") as tmp:
        work = Path(tmp)
        tokens_file = work / "tokens.json"
        admin = create_token(tokens_file, "admin", None)
        agents = {f"idle-{i}": create_token(tokens_file, "agent", f"idle-{i}") for i in range(max(counts))}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                *RUNNER,
                "serve",
                "--port",
                str(port),
                "--state",
                str(work / "state.json"),
                "--tokens",
                str(tokens_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(work / "server.log").open("wb"),
        )
        try:
            wait_until_up(url, admin)
            time.sleep(1.0)
            print(f"server alone: {measure(server.pid, args.window):.2f}% of a core over {args.window:g} s")
            for count in counts:
                chosen = dict(list(agents.items())[:count])
                if count == counts[0] and count == 1:
                    host, token = next(iter(chosen.items()))
                    percent, polls = real_agent(url, host, token, args.window, server.pid, work)
                    kind = "real graphium-run agent"
                else:
                    percent, polls = asyncio.run(simulated(url, chosen, args.wait, args.window, server.pid))
                    kind = f"simulated agents, wait={args.wait:g} s"
                made = f", {polls} polls" if polls >= 0 else ""
                print(f"{count:>4} idle agent(s) ({kind}): {percent:.2f}% of a core{made}")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=15)


def real_agent(url: str, host: str, token: str, window: float, pid: int, work: Path) -> tuple[float, int]:
    env = {**os.environ, "GRAPHIUM_AGENT_TOKEN": token, "DOCKER_HOST": f"unix://{work}/no-engine.sock"}
    agent = subprocess.Popen(
        [*RUNNER, "agent", "--host-id", host, "--server", url, "--slots", "4"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(work / "agent.log").open("wb"),
    )
    try:
        time.sleep(3.0)  # start-up, registration, first report
        return measure(pid, window), -1
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)


if __name__ == "__main__":
    main()
