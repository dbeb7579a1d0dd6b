"""What the web page's dashboard draws, as JSON: the sweep records (quality against decode latency per task
type, its Pareto front and best configuration) and the meta-braider's recent decisions (choices per task type,
feedback over time). Read-only views of files the server already has: the records it was started with and its
response log. A plain class, so the routes only call it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from serve.protocols import ResponseLog

MAX_POINTS = 2000  # per task type: the browser draws every point as an SVG circle


class Dashboard:
    def __init__(self, records: str | Path | None = None, responses: ResponseLog | None = None):
        self.records_path, self.responses = (Path(records) if records else None), responses
        self._records: list | None = None
        self._stamp: float | None = None

    def sweeps(self) -> dict[str, Any]:
        """Per task type: every record as a point (score, decode ms, config key), the Pareto front (no other
        point both faster and better) and the best-scoring configuration."""
        by_type: dict[str, list[dict]] = defaultdict(list)
        for r in self._load():
            by_type[r.task.type].append(
                {"key": r.config.key(), "task": r.task.name, "score": r.metrics.get("score"),
                 "decode_ms": r.cost.decode_ms, "trained_params": r.cost.trained_params,
                 "strategy": r.config.strategy, "anchor": r.config.anchor, "members": list(r.config.members)}
            )  # fmt: skip
        types = {}
        for name, points in sorted(by_type.items()):
            points = [p for p in points if p["score"] is not None][:MAX_POINTS]
            front = pareto(points)
            on_front = {id(p) for p in front}  # by identity: two records may describe equal points
            for p in points:
                p["pareto"] = id(p) in on_front
            # the front runs fastest to best-scoring, so its last point is the best configuration
            types[name] = {
                "points": points,
                "best": front[-1] if front else None,
                "front": [p["key"] for p in front],
            }
        source = str(self.records_path) if self.records_path else None
        return {"records": source, "count": sum(len(t["points"]) for t in types.values()), "types": types}

    def decisions(self, limit: int = 200) -> dict[str, Any]:
        """The last ``limit`` answers the meta-braider decided: choice counts per task type, the feedback
        given on them in time order, and the most recent decisions."""
        rows = self.responses.recent(limit) if self.responses is not None else []
        counts: dict[str, Counter] = defaultdict(Counter)
        feedback, recent = [], []
        for row in rows:
            kind = (row.get("task") or {}).get("type", "pinned" if row["decision"] is None else "unknown")
            counts[kind][row["model"]] += 1
            if row.get("rating") is not None:
                feedback.append(
                    {"time": row["rated"], "rating": row["rating"], "type": kind, "model": row["model"]}
                )
            recent.append({"id": row["id"], "time": row["created"], "type": kind, "model": row["model"],
                           "rating": row.get("rating")})  # fmt: skip
        return {
            "by_type": {k: dict(v.most_common()) for k, v in sorted(counts.items())},
            "feedback": sorted(feedback, key=lambda f: f["time"]),
            "recent": recent[:20],
        }

    def _load(self) -> list:
        """The records, re-read when the file changed (a sweep may append while the server runs)."""
        if self.records_path is None or not self.records_path.exists():
            return []
        stamp = self.records_path.stat().st_mtime
        if stamp != self._stamp:
            from tune.records import load_records

            self._records, self._stamp = load_records(self.records_path), stamp
        return self._records or []


def pareto(points: list[dict]) -> list[dict]:
    """The points no other point beats on both axes (higher score, lower decode ms), fastest first."""
    front, best = [], float("-inf")
    for p in sorted(points, key=lambda p: (p["decode_ms"], -p["score"])):
        if p["score"] > best:
            front.append(p)
            best = p["score"]
    return front
