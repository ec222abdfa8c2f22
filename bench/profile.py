"""Optional sampling profiles of the bench's processes with py-spy (`python -m bench --profile`).

py-spy is not a Vendo requirement: install it into the virtualenv by hand to use this. Profiles
are written as folded stacks (one "frame;frame;... count" line per stack) to var/bench/, and
`summary()` lists the functions holding the most samples, inclusive of their callees.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.stack import PYTHON


def py_spy() -> str | None:
    local = Path(PYTHON).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(
    out: Path, pid: int, *, subprocesses: bool = False, gil: bool = False, rate: int = 100
):
    """Sample process `pid` while the block runs: threads not idle, or with `gil` only the
    thread holding the interpreter lock (the Python CPU time, for a many-threaded worker)."""
    binary = py_spy()
    if binary is None:
        yield None
        return
    cmd = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
           "--output", str(out), "--nonblocking"]  # fmt: skip
    if subprocesses:
        cmd.append("--subprocesses")
    if gil:
        cmd.append("--gil")
    log = out.with_suffix(".log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def summary(path: Path, *, top: int = 25, within: str = "") -> str:
    """The functions with the most samples (inclusive) in a folded profile."""
    inclusive: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if within and not any(within in frame for frame in frames):
            continue
        total += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples{f' under {within!r}' if within else ''}"]
    for frame, n in inclusive.most_common(top):
        lines.append(f"{n / total:6.1%}  {frame}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1]), within=sys.argv[2] if len(sys.argv) > 2 else ""))
