"""Local stand-in for the Anthropic Messages API, for tests and benchmarks.

Speaks enough of the wire format (JSON messages, SSE streams, error bodies) that the real
`anthropic` SDK runs against it unchanged via `Anthropic(base_url=stub.base_url, api_key="test")`.
Stdlib only, so it also runs outside the project's virtualenv:

    python tests/anthropic_stub.py --port 8765 --latency 1.0

Behaviours (one per POST /v1/messages, taken from the script queue, else the default):

- "ok": deterministic markdown answer echoing the last user message.
- "text:<literal>": answer is exactly <literal>, chunked across the deltas.
- "status:<code>": HTTP error with the real API's error body and headers.
- "stream-overloaded": HTTP 200 stream that emits an `error` event (overloaded_error) mid-way.
- "cut": HTTP 200 chunked stream whose connection is closed mid-body, before message_delta.
- "truncate": HTTP 200 stream that ends cleanly (EOF-delimited body) before message_delta.
- "slow:<seconds>": like "ok" with <seconds> spread across the deltas.
- "hang": headers and message_start, then silence for an hour (or until stop / client gone).
- "silent:<seconds>": headers and message_start, then silence for <seconds>, then like "ok"
  (a model thinking before its first token).
- "refusal": a few words, then stop_reason "refusal".
- "max-tokens" or "max-tokens:<literal>": like "ok" (or the literal), stop_reason "max_tokens".
- "html:<code>": HTTP error whose body is an HTML page, as a proxy in front answers.
- "error-text:<code>": HTTP error whose JSON body is `{"error": "<text>"}`, no type.

`refuse_key(status)` makes every request (messages and models) answer that status, as when the
platform's key is revoked (401) or out of credit (402), until `accept_key()`. GET /v1/models
lists the stub's models (the free call that checks a key); `probes` counts those calls.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import select
import signal
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["BEHAVIOURS", "ERROR_TYPES", "AnthropicStub"]

BEHAVIOURS = (
    "ok", "text:", "status:", "stream-overloaded", "cut", "truncate", "slow:", "hang", "silent:",
    "refusal", "max-tokens", "html:", "error-text:",
)  # fmt: skip
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
REFUSAL_TEXT = "I can't help with that."

# Error `type` the real API puts in the body for each status code.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_ERROR_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out.",
    "overloaded_error": "Overloaded",
}

HANG_SECONDS = 3600.0


def _error_type(code: int) -> str:
    """Return the API error type for an HTTP status code."""
    return ERROR_TYPES.get(code, "api_error" if code >= 500 else "invalid_request_error")


def _validate(behaviour: str) -> str:
    """Raise ValueError unless `behaviour` is one the stub understands."""
    name, sep, arg = behaviour.partition(":")
    plain = ("ok", "stream-overloaded", "cut", "truncate", "hang", "refusal", "max-tokens")
    if not sep and behaviour in plain:
        return behaviour
    try:
        if name in ("text", "max-tokens") and sep:
            return behaviour
        if name in ("status", "html", "error-text") and 400 <= int(arg) <= 599:
            return behaviour
        if name in ("slow", "silent") and float(arg) >= 0:
            return behaviour
    except ValueError:
        pass
    raise ValueError(f"unknown stub behaviour {behaviour!r}; expected one of {BEHAVIOURS}")


def _block_text(content: Any) -> str:
    """Flatten a `system` or message `content` value (string or block list) to its text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return ""


def _input_text(body: dict[str, Any]) -> str:
    """Concatenate all prompt text of a request, for deterministic token counts."""
    parts = [_block_text(body.get("system"))]
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            parts.append(_block_text(message.get("content")))
    return "".join(parts)


def _count_tokens(text: str) -> int:
    """Approximate tokens the way the docs suggest: about four characters each."""
    return len(text) // 4 + 1


def _default_text(body: dict[str, Any]) -> str:
    """Build the deterministic "ok" answer for a request."""
    last_user = ""
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = _block_text(message.get("content"))
    snippet = " ".join(last_user.split())[:60]
    return (
        "## Stub answer\n\n"
        f"You asked: *{snippet}*\n\n"
        "- This reply comes from the local Anthropic stub.\n"
        "- It is deterministic for a given request.\n"
    )


def _split(text: str, parts: int) -> list[str]:
    """Split `text` into at most `parts` non-empty, nearly equal pieces."""
    parts = max(1, min(parts, len(text)))
    if not text:
        return []
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _Aborted(Exception):
    """The stub is stopping; drop the connection."""


class _Server(ThreadingHTTPServer):
    # Benchmarks open 100+ connections at once; the default backlog of 5 would reset some.
    request_queue_size = 1024
    daemon_threads = True
    # Handler threads may sleep for an hour ("hang"); never join them on close.
    block_on_close = False
    allow_reuse_address = True

    stub: AnthropicStub

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients hanging up mid-stream is expected in these tests."""


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so streams use chunked encoding like the real API, making "cut" a protocol error.
    protocol_version = "HTTP/1.1"
    server: _Server
    _chunked = True

    def setup(self) -> None:
        super().setup()
        self.server.stub._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.stub._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            if path == "/v1/models":
                self.server.stub._serve_models(self)
            else:
                self._reply_error(404, "not_found_error", f"Not found: {self.path}")
        except (_Aborted, OSError):
            self.close_connection = True

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._reply_error(400, "invalid_request_error", "Request body is not a JSON object.")
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            if path == "/v1/messages":
                self.server.stub._serve_message(self, body)
            elif path == "/v1/messages/count_tokens":
                self._reply_json(200, {"input_tokens": _count_tokens(_input_text(body))})
            else:
                self._reply_error(404, "not_found_error", f"Not found: {self.path}")
        except (_Aborted, OSError):
            self.close_connection = True

    # -- plain responses ---------------------------------------------------------------------

    def _reply_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        """Send a complete JSON response."""
        payload = _dumps(obj)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", self.server.stub._next_id("req"))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _reply_error(self, status: int, error_type: str | None = None, message: str = "") -> None:
        """Send an error with the real API's body shape and retry headers."""
        error_type = error_type or _error_type(status)
        body = {
            "type": "error",
            "error": {"type": error_type, "message": message or _ERROR_MESSAGES[error_type]},
        }
        headers = {}
        if status in (429, 529):
            # The SDK treats `retry-after: 0` as absent and backs off 0.5-8 s, so also send
            # `retry-after-ms`, which it checks first, to keep retries near-instant.
            headers = {"retry-after": "0", "retry-after-ms": "1"}
        self._reply_json(status, body, headers)

    def _reply_raw(self, status: int, body: bytes, content_type: str) -> None:
        """Send an error whose body is not the API's: a proxy's page, an odd JSON shape."""
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # -- SSE ---------------------------------------------------------------------------------

    def _start_sse(self, *, chunked: bool = True) -> None:
        """Send SSE response headers; without `chunked` the body is delimited by EOF."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", self.server.stub._next_id("req"))
        if chunked:
            self.send_header("transfer-encoding", "chunked")
        else:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self._chunked = chunked

    def _event(self, name: str, data: dict[str, Any]) -> None:
        """Write one SSE event, framed as an HTTP chunk when chunked."""
        frame = b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"
        if self._chunked:
            frame = b"%x\r\n%s\r\n" % (len(frame), frame)
        self.wfile.write(frame)

    def _end_sse(self) -> None:
        """Terminate the chunked body so the connection can be reused."""
        if self._chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close the TCP connection immediately, mid-body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _client_gone(self, timeout: float) -> bool:
        """Wait up to `timeout` and report whether the client closed its end."""
        try:
            readable, _, _ = select.select([self.connection], [], [], timeout)
            if not readable:
                return False
            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                return True
        except (OSError, ValueError):
            return True
        # The client sent bytes instead of closing; sleep so the loop does not spin on them.
        time.sleep(timeout)
        return False


class AnthropicStub:
    """Serve a scriptable fake of the Anthropic Messages API on a local port."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, chunks: int = 5
    ) -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.chunks = max(1, chunks)
        self.requests: list[dict[str, Any]] = []
        self.probes = 0
        self._script: deque[str] = deque()
        self._default = "ok"
        # (marker, behaviour): a request whose prompt holds the marker gets the behaviour.
        self._rules: list[tuple[str, str]] = []
        self._key_error: int | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Return the URL to pass as `base_url` to the SDK client."""
        if self._server is None:
            raise RuntimeError("AnthropicStub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> AnthropicStub:
        """Bind the port and serve in a background daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="anthropic-stub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and drop open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> AnthropicStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------------

    def script(self, *behaviours: str) -> None:
        """Queue behaviours; each POST /v1/messages consumes one, then the default applies."""
        checked = [_validate(b) for b in behaviours]
        with self._lock:
            self._script.extend(checked)

    def set_default(self, behaviour: str) -> None:
        """Set the behaviour used when the script queue is empty."""
        checked = _validate(behaviour)
        with self._lock:
            self._default = checked

    def when(self, marker: str, behaviour: str) -> None:
        """Answer every request whose prompt contains `marker` with `behaviour`."""
        checked = _validate(behaviour)
        with self._lock:
            self._rules.append((marker, checked))

    def reset(self) -> None:
        """Clear the script, rules and requests; restore the "ok" default and the key."""
        with self._lock:
            self._script.clear()
            self._rules.clear()
            self.requests.clear()
            self.probes = 0
            self._default = "ok"
            self._key_error = None

    def refuse_key(self, status: int = 401) -> None:
        """Answer every request with `status` (401, 402, 403) until accept_key()."""
        with self._lock:
            self._key_error = status

    def accept_key(self) -> None:
        with self._lock:
            self._key_error = None

    # -- internals ---------------------------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_stub{next(self._ids):012d}"

    def _take(self, body: dict[str, Any]) -> str:
        """Record the request and pop the behaviour that answers it (a refused key wins)."""
        text = _input_text(body)
        with self._lock:
            self.requests.append(body)
            if self._key_error is not None:
                return f"status:{self._key_error}"
            for marker, behaviour in self._rules:
                if marker in text:
                    return behaviour
            return self._script.popleft() if self._script else self._default

    def _serve_models(self, h: _Handler) -> None:
        """Answer GET /v1/models: a free call, refused exactly when the key is."""
        with self._lock:
            self.probes += 1
            key_error = self._key_error
        if key_error is not None:
            h._reply_error(key_error)
            return
        data = [
            {
                "type": "model",
                "id": model,
                "display_name": model,
                "created_at": "2025-01-01T00:00:00Z",
            }
            for model in MODELS
        ]
        h._reply_json(
            200, {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
        )

    def _pause(self, seconds: float) -> None:
        """Sleep, but abort at once if the stub is stopping."""
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Aborted

    def _serve_message(self, h: _Handler, body: dict[str, Any]) -> None:
        """Answer one POST /v1/messages according to the next behaviour."""
        behaviour = self._take(body)
        name, _, arg = behaviour.partition(":")
        stream = bool(body.get("stream"))
        latency = self.latency

        if name == "status":
            h._reply_error(int(arg))
            return
        if name == "html":
            page = f"<html><body><h1>{arg} Bad Gateway</h1><p>nginx</p></body></html>"
            h._reply_raw(int(arg), page.encode(), "text/html")
            return
        if name == "error-text":
            h._reply_raw(int(arg), _dumps({"error": "upstream failed"}), "application/json")
            return
        if name == "slow":
            latency = float(arg)
        if name == "text" or (name == "max-tokens" and arg):
            text = arg
        elif name == "refusal":
            text = REFUSAL_TEXT
        else:
            text = _default_text(body)
        stop_reason = {"refusal": "refusal", "max-tokens": "max_tokens"}.get(name, "end_turn")
        input_tokens = _count_tokens(_input_text(body))
        output_tokens = _count_tokens(text)
        message = {
            "id": self._next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or "claude-stub",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }

        if not stream:
            self._serve_json(h, name, message, text, output_tokens, latency, stop_reason)
            return

        h._start_sse(chunked=name != "truncate")
        h._event("message_start", {"type": "message_start", "message": message})
        if name == "hang":
            self._hang(h)
            return
        if name == "silent":
            self._silence(h, float(arg))
        h._event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        h._event("ping", {"type": "ping"})

        pieces = _split(text, self.chunks)
        if name in ("stream-overloaded", "cut", "truncate"):
            # Fail part-way: two deltas out of however many the text would have had.
            pieces = pieces[:2]
        step = latency / max(1, len(pieces))
        for piece in pieces:
            self._pause(step)
            h._event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        if not pieces:
            self._pause(latency)

        if name == "stream-overloaded":
            error = {"type": "overloaded_error", "message": _ERROR_MESSAGES["overloaded_error"]}
            h._event("error", {"type": "error", "error": error})
            h._end_sse()
            return
        if name in ("cut", "truncate"):
            # "cut" leaves the chunked body unterminated; "truncate" ends the EOF-delimited body.
            h._drop()
            return

        h._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        h._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        h._event("message_stop", {"type": "message_stop"})
        h._end_sse()

    def _serve_json(
        self,
        h: _Handler,
        name: str,
        message: dict[str, Any],
        text: str,
        output_tokens: int,
        latency: float,
        stop_reason: str = "end_turn",
    ) -> None:
        """Answer a non-streaming request; stream-only failures map to their nearest analogue."""
        if name == "hang":
            # Nothing at all is sent, so the client's read timeout is what ends it.
            self._hang(h)
            return
        self._pause(latency)
        if name == "stream-overloaded":
            h._reply_error(529)
            return
        message = {
            **message,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "usage": {**message["usage"], "output_tokens": output_tokens},
        }
        if name in ("cut", "truncate"):
            # Promise the full body, send half, hang up: an incomplete read on the client.
            payload = _dumps(message)
            h.send_response(200)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(payload)))
            h.send_header("request-id", self._next_id("req"))
            h.end_headers()
            h.wfile.write(payload[: len(payload) // 2])
            h._drop()
            return
        h._reply_json(200, message)

    def _silence(self, h: _Handler, seconds: float) -> None:
        """Send nothing for `seconds` (or until the stub stops or the client hangs up)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stopping.is_set():
                raise _Aborted
            if h._client_gone(min(0.25, max(deadline - time.monotonic(), 0.0))):
                raise _Aborted

    def _hang(self, h: _Handler) -> None:
        """Stay silent until the hour is up, the stub stops, or the client disconnects."""
        deadline = time.monotonic() + HANG_SECONDS
        while time.monotonic() < deadline and not self._stopping.is_set():
            if h._client_gone(0.25):
                break
        h._drop()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Run the stub in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    parser.add_argument("--chunks", type=int, default=5, help="text deltas per stream")
    parser.add_argument("--default", default="ok", help="behaviour for every request")
    args = parser.parse_args(argv)

    stub = AnthropicStub(host=args.host, port=args.port, latency=args.latency, chunks=args.chunks)
    stub.set_default(args.default)
    # Benchmark scripts stop background servers with SIGTERM; shut down cleanly on it too.
    signal.signal(signal.SIGTERM, _interrupt)
    stub.start()
    print(f"Anthropic stub listening on {stub.base_url} (default {args.default!r})", flush=True)
    try:
        stub.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stub.stop()


if __name__ == "__main__":
    main()
