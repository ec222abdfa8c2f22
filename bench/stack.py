"""Processes, databases and environment for the bench and the drills.

Every process is started in its own session (process group) and stopped by signalling that
group, so wrappers (the anvil npm shim, gunicorn's workers) go with their parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")


class StackError(RuntimeError):
    """The bench cannot run here (a service is missing or a process died)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.1, proc=None):
    """Poll predicate() until it is truthy; raise StackError after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and not proc.alive():
            raise StackError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


# ------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads, from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0, 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def _cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def processes_cpu() -> dict[int, tuple[str, float]]:
    """{pid: (command name, CPU seconds)} of every live process."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            pid = int(stat.parent.name)
            found[pid] = (text[text.index("(") + 1 : text.rindex(")")], sum(cpu_times(pid)))
    return found


def top_cpu(before: dict, after: dict, n: int = 8) -> list[tuple[str, float]]:
    """The `n` commands that used the most CPU seconds between two processes_cpu() readings."""
    used: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        spent = cpu - (before[pid][1] if pid in before and before[pid][0] == name else 0.0)
        if spent > 0:
            used[name] = used.get(name, 0.0) + spent
    return sorted(used.items(), key=lambda item: -item[1])[:n]


def command_cpu(name: str) -> float:
    """CPU seconds of every live process whose command name is `name` (e.g. postgres)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if text[text.index("(") + 1 : text.rindex(")")] == name:
                total += sum(cpu_times(int(stat.parent.name)))
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; diff two readings."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return float(total - idle), float(total)


def tcp_connections(pid: int, remote_port: int) -> int:
    """Established TCP connections of process `pid` to `remote_port` (from /proc, no query)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                port = int(fields[2].rsplit(":", 1)[1], 16)
                if port == remote_port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                todo += [int(child) for child in task.read_text().split()]
    return found


class Proc:
    """One subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path, cwd: Path = ROOT):
        self.name, self.cmd, self.env, self.cwd = name, cmd, env, cwd
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Proc:
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {time.strftime('%H:%M:%S')}: {' '.join(self.cmd)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.cmd,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """utime + stime of the process (all its threads), from /proc/<pid>/stat."""
        return _cpu_seconds(self.pid)

    def tree_cpu_seconds(self) -> float:
        """CPU of the process and all its descendants alive now (e.g. gunicorn's workers)."""
        return sum(_cpu_seconds(pid) for pid in _descendants(self.pid))

    def signal_group(self, sig: int) -> bool:
        if self.popen is None:
            return False
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the whole group: no cleanup, no acks, as when a machine dies."""
        if self.popen is None:
            return
        self.signal_group(signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after `timeout`."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        # The leader may be gone while children of its group live on (npm shims): sweep them.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Stack:
    """Owns every process started through it; `close()` stops them all, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        for old in log_dir.glob("*.log"):
            old.unlink()
        self.procs: list[Proc] = []
        self.cleanups: list = []

    def start(self, name: str, cmd: list[str], env: dict) -> Proc:
        proc = Proc(name, cmd, env, self.log_dir)
        self.procs.append(proc)
        return proc.start()

    def on_close(self, func) -> None:
        self.cleanups.append(func)

    def close(self) -> None:
        """Close this process's database connections, then stop every process, newest first."""
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # Django was never set up
            pass
        for proc in reversed(self.procs):
            try:
                proc.stop(timeout=8)
            except Exception as error:  # keep stopping the others
                print(f"  (stopping {proc.name}: {error})", file=sys.stderr)
        for func in reversed(self.cleanups):
            try:
                func()
            except Exception as error:
                print(f"  (cleanup: {error})", file=sys.stderr)


def terminate_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt so `finally` blocks run."""

    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGHUP, _raise)


# ------------------------------------------------------------------------------
# PostgreSQL and Redis
# ------------------------------------------------------------------------------


def services_from_env(*, broker_needed: bool = True) -> tuple[str, str]:
    """Return (DATABASE_URL, CELERY_BROKER_URL) as `make` passes them; both must be real."""
    database = os.environ.get("DATABASE_URL", "")
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not database.startswith(("postgres://", "postgresql://")):
        raise StackError(
            "The bench needs PostgreSQL: DATABASE_URL is "
            f"{database or 'unset'} (scripts/services_env.sh sets it when 127.0.0.1:5432 answers)."
        )
    if broker_needed and not broker.startswith("redis://"):
        raise StackError(
            "The bench needs Redis: CELERY_BROKER_URL is "
            f"{broker or 'unset'} (scripts/services_env.sh sets it when 127.0.0.1:6379 answers)."
        )
    return database, broker


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _admin_conninfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres"))


def database_recreate(url: str) -> None:
    """Drop and create the database named in `url` (a bench-owned one)."""
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("vendo_"):
        raise StackError(f"refusing to recreate database {name!r}: not a bench database")
    with psycopg.connect(_admin_conninfo(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("vendo_"):
        return
    with psycopg.connect(_admin_conninfo(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def pg_max_connections(url: str) -> int:
    import psycopg

    with psycopg.connect(_admin_conninfo(url), autocommit=True) as conn:
        return int(conn.execute("SHOW max_connections").fetchone()[0])


def redis_flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def manage(env: dict, *args: str, log_dir: Path, timeout: float = 300) -> None:
    """Run `manage.py <args>` with env; raise with its output if it fails."""
    log = log_dir / f"manage-{args[0]}.log"
    with log.open("ab") as out:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    if result.returncode != 0:
        raise StackError(f"manage.py {' '.join(args)} failed:\n{log.read_text()[-3000:]}")


def django_setup(env: dict, settings_module: str = "config.settings") -> None:
    """Point this process's Django at the bench services and set it up."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
