"""A CPU profile of one ``graphium-run`` command, for bench_ssh.py ``--profile DIR``.

yappi (``pip install yappi``) with its CPU clock, every thread (the event loop and docker-py's
worker threads), imports included: what the control side spends its CPU on, whatever the
machine's load (a wall-clock profile of an SSH apply is mostly waiting). Without yappi, cProfile
of the main thread only, with a CPU timer. Writes a pstats file (snakeviz, pstats) and returns
the top functions by cumulative (inclusive) CPU.
"""

from __future__ import annotations

import io
import pstats
import subprocess
import sys
from pathlib import Path

_RUNNER = """
import resource, sys, time
out, argv = sys.argv[1], sys.argv[2:]
sys.argv = ["graphium-run", *argv]
try:
    import yappi
except ImportError:
    yappi = None
if yappi is not None:
    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)
else:
    import cProfile
    prof = cProfile.Profile(time.process_time)
    prof.enable()
try:
    from graphium.cli import main
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
finally:
    if yappi is not None:
        yappi.stop()
        yappi.get_func_stats().save(out, type="pstat")
    else:
        prof.disable()
        prof.dump_stats(out)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"PROFILER {'yappi, all threads' if yappi else 'cProfile, main thread'} "
          f"CPU {ru.ru_utime + ru.ru_stime:.3f}", file=sys.stderr)
sys.exit(code)
"""


def profile(argv: list[str], out: Path, cwd: Path, env: dict[str, str]) -> str:
    """Run ``graphium-run ARGV`` under the profiler, stats into out; returns its summary line."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(out), *argv], cwd=cwd, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"profiled graphium-run {' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return next((line for line in proc.stderr.splitlines() if line.startswith("PROFILER ")), "PROFILER ?")


def top(path: Path, count: int = 40) -> list[str]:
    """The top functions by cumulative CPU, one line each (pstats' columns)."""
    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.sort_stats("cumulative").print_stats(count)
    lines = [line for line in buf.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return [_shorten(line) for line in lines[start:]]


def _shorten(line: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in line:
            head, _, tail = line.partition("/")
            return head + tail.split(marker, 1)[1] if marker in tail else line
    if "/graphium/" in line:
        head, _, tail = line.partition("/")
        return head + "graphium/" + tail.split("/graphium/", 1)[1]
    return line
