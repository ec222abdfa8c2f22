"""A small HTTP load client: threads with keep-alive http.client connections, loopback only.

Run by the bench as `python -m bench.loadgen SPEC.json` (a process of its own, so its work does
not share the driver's interpreter lock); prints one JSON object with every latency. `run()`
starts several such processes against one server and merges what they measured.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from bench.stack import PYTHON, ROOT

TOKEN_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
MAX_ERRORS_KEPT = 5


class _Client:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.conn: http.client.HTTPConnection | None = None
        self.headers = {
            "Host": f"{spec['host']}:{spec['port']}",
            # Production sits behind a TLS proxy: without this, DEBUG-off Vendo redirects to https.
            "X-Forwarded-Proto": "https",
            "Origin": f"https://{spec['host']}:{spec['port']}",
            "User-Agent": "vendo-bench",
        }
        self.token = ""

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.spec["host"], self.spec["port"], timeout=30)
        return self.conn

    def request(self, method: str, path: str, body: str | None = None):
        headers = dict(self.headers)
        payload = None
        if body is not None:
            if self.token:
                body = f"csrfmiddlewaretoken={quote(self.token)}&{body}"
            payload = body.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            if response.will_close:
                conn.close()
                self.conn = None
            return response, data
        raise AssertionError("unreachable")

    def csrf(self, path: str) -> None:
        """Fetch a page with a form: keep its CSRF cookie and token for the POSTs."""
        response, data = self.request("GET", path)
        cookies = response.headers.get_all("Set-Cookie") or []
        for cookie in cookies:
            name, _, rest = cookie.partition("=")
            if name.strip() == "csrftoken":
                self.headers["Cookie"] = f"csrftoken={rest.split(';', 1)[0]}"
        match = TOKEN_RE.search(data.decode(errors="replace"))
        if not match or "Cookie" not in self.headers:
            raise RuntimeError(f"no CSRF cookie/token on {path} (status {response.status})")
        self.token = match.group(1)


def _main(spec: dict) -> dict:
    requests = spec["requests"]
    cycle = spec.get("cycle", False)
    counter = itertools.count()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    ends: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(spec["threads"] + 1)
    start_at = spec["start_at"]
    stop_at = start_at + spec["duration"]
    expect = set(spec.get("expect", [200]))

    def worker(n: int) -> None:
        client = _Client(spec)
        warmup = spec.get("warmup", [])
        if spec.get("warmup_split"):
            warmup = warmup[n :: spec["threads"]]
        try:
            if spec.get("csrf_path"):
                client.csrf(spec["csrf_path"])
            for warm in warmup:
                client.request(warm.get("method", "GET"), warm["path"], warm.get("body"))
        finally:
            ready.wait()
        time.sleep(max(0.0, start_at - time.time()))
        mine: list[float] = []
        last = 0.0
        while True:
            i = next(counter)
            if not cycle and i >= len(requests):
                break
            if time.time() >= stop_at:
                break
            req = requests[i % len(requests)]
            t0 = time.perf_counter()
            try:
                response, _ = client.request(req.get("method", "GET"), req["path"], req.get("body"))
                status = str(response.status)
            except Exception as error:
                status = type(error).__name__
            mine.append((time.perf_counter() - t0) * 1000)
            last = time.time()
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if (not status.isdigit() or int(status) not in expect) and len(
                    errors
                ) < MAX_ERRORS_KEPT:
                    errors.append(f"{req.get('method', 'GET')} {req['path']}: {status}")
        with lock:
            latencies.extend(mine)
            ends.append(last)

    threads = [
        threading.Thread(target=worker, args=(n,), daemon=True) for n in range(spec["threads"])
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join()
    return {
        "latencies_ms": latencies,
        "statuses": statuses,
        "errors": errors,
        "start": start_at,
        "end": max([e for e in ends if e] or [start_at]),
    }


def run(
    *,
    port: int,
    requests: list[dict],
    clients: int,
    duration: float,
    processes: int = 1,
    cycle: bool = False,
    csrf_path: str | None = None,
    expect=(200,),
    warmup: list[dict] | None = None,
    warmup_split: bool = False,
) -> dict:
    """Drive `clients` keep-alive connections (over `processes` processes) for up to `duration`.

    Without `cycle`, each request in `requests` is made once (split across processes), and the
    run ends early when they are used up. Each client first makes the `warmup` requests
    (unmeasured), or with `warmup_split` its share of them. Returns merged latencies (ms),
    statuses, errors, the request count and requests/s over the common window.
    """
    processes = max(1, min(processes, clients))
    start_at = time.time() + 1.5 + 0.02 * clients  # time for every client to connect first
    procs = []
    files = []
    for n in range(processes):
        threads = clients // processes + (1 if n < clients % processes else 0)
        part = requests if cycle else requests[n::processes]
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "threads": threads,
            "requests": part,
            "cycle": cycle,
            "duration": duration,
            "start_at": start_at,
            "csrf_path": csrf_path,
            "expect": list(expect),
            "warmup": (warmup or [])[n::processes] if warmup_split else (warmup or []),
            "warmup_split": warmup_split,
        }
        handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
        json.dump(spec, handle)
        handle.close()
        files.append(Path(handle.name))
        procs.append(
            subprocess.Popen(
                [PYTHON, "-m", "bench.loadgen", handle.name],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=duration + 120)
            if proc.returncode != 0:
                raise RuntimeError(f"load client failed:\n{err[-3000:]}")
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for path in files:
            path.unlink(missing_ok=True)
    latencies = [ms for r in results for ms in r["latencies_ms"]]
    statuses: dict[str, int] = {}
    for r in results:
        for status, n in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    window = max(end - start, 1e-9)
    return {
        "latencies_ms": latencies,
        "count": len(latencies),
        "statuses": statuses,
        "errors": [e for r in results for e in r["errors"]][:MAX_ERRORS_KEPT],
        "seconds": window,
        "rps": len(latencies) / window,
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(json.dumps(_main(json.load(handle))))
