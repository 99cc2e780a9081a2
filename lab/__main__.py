"""Command line: `python -m lab engine up|down|status`, `python -m lab up|down|status`,
`python -m lab postgres up|down|url`."""

from __future__ import annotations

import argparse
import json
import sys
import time

import lab


def _engine(action: str) -> int:
    if action == "up":
        t = time.monotonic()
        url = lab.ensure_engine()
        lab.claim_engine()
        print(f"export DOCKER_HOST={url}", flush=True)
        print(f"# engine ready in {time.monotonic() - t:.2f}s", file=sys.stderr)
    elif action == "down":
        print("stopped" if lab.stop_engine() else "not running")
    else:
        running = lab.engine_running()
        print(f"{'running' if running else 'stopped'} {lab.LOCAL.url}")
        return 0 if running else 3
    return 0


def _postgres(action: str) -> int:
    from . import postgres

    if action == "up":
        t = time.monotonic()
        postgres.ensure()
        print(f"PostgreSQL on 127.0.0.1:{postgres.PORT}; `python -m lab postgres url` prints its URL")
        print(f"# ready in {time.monotonic() - t:.2f}s", file=sys.stderr)
    elif action == "down":
        print("stopped" if postgres.stop() else "not running")
    else:  # the URL carries the password: printed only when asked for, for a shell to capture
        if not postgres.ready():
            print("lab: PostgreSQL is not running (python -m lab postgres up)", file=sys.stderr)
            return 3
        print(postgres.CLUSTER.url())
    return 0


def _lab(args: argparse.Namespace) -> int:
    if args.command == "up":
        t = time.monotonic()
        info = lab._up_exact(args.hosts, args.registry)
        lab.claim_lab()
        for host in info.hosts:
            print(f"{host.id:18} {host.address:12} {host.docker_url}")
        print(f"inventory: {info.inventory}")
        print(f"# lab ready in {time.monotonic() - t:.2f}s", file=sys.stderr)
    elif args.command == "down":
        t = time.monotonic()
        lab.teardown(purge=args.purge)
        print(f"lab down ({time.monotonic() - t:.2f}s)")
    else:
        status = lab.status()
        print(json.dumps(status, indent=2))
        return 0 if status["hosts"] and all(h["healthy"] for h in status["hosts"]) else 3
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=lab.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    eng = sub.add_parser("engine", help="the single root-namespace engine (single-host tests, demo)")
    eng.add_argument("action", choices=["up", "down", "status"])
    up = sub.add_parser("up", help="bring up the multi-host lab (idempotent)")
    up.add_argument("--hosts", type=int, default=3, help="number of hosts (default 3)")
    up.add_argument("--registry", action="store_true", help="also run a registry on 10.231.0.1:5000")
    down = sub.add_parser("down", help="tear the multi-host lab down (idempotent)")
    down.add_argument("--purge", action="store_true", help="also delete keys, engine data, registry")
    pg = sub.add_parser("postgres", help="the throwaway PostgreSQL 15 cluster of the store's tests")
    pg.add_argument("action", choices=["up", "down", "url"])
    sub.add_parser("status", help="health of the lab's hosts (exit 3 if not all healthy)")
    args = parser.parse_args(argv)
    try:
        if args.command == "engine":
            return _engine(args.action)
        if args.command == "postgres":
            return _postgres(args.action)
        return _lab(args)
    except lab.LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
