"""Celery worker subprocesses, and remote control of their consumers."""

from __future__ import annotations

import time

from bench.stack import PYTHON, Proc, Stack, StackError, cpu_times, tcp_connections


def worker_cmd(
    *, app: str, name: str, queues: str, concurrency: int, loglevel: str = "INFO"
) -> list[str]:
    return [
        PYTHON, "-m", "celery", "-A", app, "worker",
        "-Q", queues, "--pool", "threads", "--concurrency", str(concurrency),
        "-n", name, "--loglevel", loglevel,
    ]  # fmt: skip


def worker_start(
    stack: Stack,
    env: dict,
    *,
    app: str = "config",
    name: str,
    queues: str = "generation,payments,reaper",
    concurrency: int = 100,
    log: str | None = None,
) -> Proc:
    cmd = worker_cmd(app=app, name=name, queues=queues, concurrency=concurrency)
    return stack.start(log or name.split("@")[0], cmd, env)


def worker_ready(proc: Proc, name: str, *, timeout: float = 60.0) -> None:
    """Wait until the worker answers a remote-control ping (it consumes then)."""
    from config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StackError(f"worker {name} exited while starting:\n{proc.tail()}")
        replies = app.control.ping(destination=[name], timeout=0.5)
        if replies:
            return
    raise StackError(f"worker {name} did not answer a ping within {timeout:.0f}s:\n{proc.tail()}")


def consumer(name: str, queue: str, *, on: bool) -> None:
    """Start or stop the worker's consumer of `queue` (remote control), and wait for its reply."""
    from config.celery import app

    for _ in range(5):
        if on:
            replies = app.control.add_consumer(queue, destination=[name], reply=True, timeout=2)
        else:
            replies = app.control.cancel_consumer(queue, destination=[name], reply=True, timeout=2)
        if replies:
            return
    raise StackError(f"worker {name} did not answer {'add' if on else 'cancel'}_consumer {queue}")


class WorkerGroup:
    """One or more worker processes sharing `concurrency` threads, handled as one worker."""

    def __init__(
        self, stack: Stack, env: dict, *, name: str, processes: int, concurrency: int, log: str
    ) -> None:
        base, host = name.split("@")
        self.names = [name] if processes == 1 else [f"{base}-{i}@{host}" for i in range(processes)]
        per = concurrency // processes
        self.procs = [
            worker_start(
                stack,
                env,
                name=worker,
                concurrency=per,
                log=log if processes == 1 else f"{log}-{i}",
            )
            for i, worker in enumerate(self.names)
        ]

    def ready(self) -> None:
        for proc, name in zip(self.procs, self.names, strict=True):
            worker_ready(proc, name)

    def consumer(self, queue: str, *, on: bool) -> None:
        for name in self.names:
            consumer(name, queue, on=on)

    def alive(self) -> bool:
        return all(proc.alive() for proc in self.procs)

    def tail(self) -> str:
        return "\n".join(proc.tail() for proc in self.procs)

    def cpu_times(self) -> tuple[float, float]:
        times = [cpu_times(proc.pid) for proc in self.procs]
        return sum(t[0] for t in times), sum(t[1] for t in times)

    def cpu_seconds(self) -> float:
        return sum(self.cpu_times())

    def tcp_connections(self, port: int) -> int:
        return sum(tcp_connections(proc.pid, port) for proc in self.procs)

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
