"""Request guards and counters: a body-size limit (declared or streamed) and Prometheus-style metrics."""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque


class BodyLimit:
    """ASGI middleware: 413 when a body declares or streams more than ``max_bytes``, before the app sees it.

    The body is read here in full (it is capped) and replayed to the app: a limit raised from inside the app's
    own read would reach FastAPI's body parser, which reports any read error as a 400.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._reject(send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before its body was in
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._reject(send)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:  # after the body: the app waits for a disconnect (streaming responses)
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, send) -> None:
        body = json.dumps({"error": {"message": f"request body exceeds {self.max_bytes} bytes",
                                     "type": "request_too_large", "param": None, "code": None}}).encode()  # fmt: skip
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def escape_label(value: str) -> str:
    """A label value as the Prometheus text format writes it (backslash, quote and newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counts by route and status, and latency quantiles over the last 2048 requests per route.

    Labels come from a fixed set: the caller passes the route *template* (``/v1/conversations/{conversation_id}``),
    and anything that matched no route is ``other``. A raw path would let any client, authenticated or not,
    write label values (and new series) into /metrics."""

    def __init__(self, window: int = 2048):
        self.counts: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))
        self.streams_stopped = 0
        self.streams_finished = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # the app is pickled into Serve replicas; locks are not picklable
        return {"window": self.latency.default_factory().maxlen}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["window"])

    def stopped(self) -> None:
        """A streamed answer ended early because its client left (the page's stop button)."""
        with self._lock:
            self.streams_stopped += 1

    def finished(self) -> None:
        """A streamed answer ran to its end (a stop token or max_tokens) and was sent whole."""
        with self._lock:
            self.streams_finished += 1

    def observe(self, path: str, status: int, seconds: float) -> None:
        """``path``: the matched route's template, or "other"; ``status`` an HTTP status code."""
        status = int(status)
        with self._lock:
            self.counts[(path, status)] += 1
            self.latency[path].append(seconds)

    def prometheus(self) -> str:
        lines = ["# TYPE braid_requests_total counter"]
        with self._lock:
            lines += [
                f'braid_requests_total{{path="{escape_label(p)}",status="{s}"}} {n}'
                for (p, s), n in sorted(self.counts.items())
            ]
            lines.append("# TYPE braid_request_seconds summary")
            for route, xs in sorted(self.latency.items()):
                ordered, path = sorted(xs), escape_label(route)
                for q in (0.5, 0.95, 0.99):
                    value = ordered[min(len(ordered) - 1, int(q * len(ordered)))]
                    lines.append(f'braid_request_seconds{{path="{path}",quantile="{q}"}} {value:.6f}')
                lines.append(f'braid_request_seconds_count{{path="{path}"}} {len(ordered)}')
            lines += [
                "# TYPE braid_streams_stopped_total counter",
                f"braid_streams_stopped_total {self.streams_stopped}",
                "# TYPE braid_streams_finished_total counter",
                f"braid_streams_finished_total {self.streams_finished}",
            ]
        return "\n".join(lines) + "\n"
