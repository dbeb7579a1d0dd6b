"""Monitoring the meta-braider, as the seed's "Monitor Performance" tip does it:

    log_decision(task, decision, performance)   # one JSON line per decision, with its explanation and outcome
    analyze_decision_patterns()                 # which models / strategies per task type, success rates
    suggest_improvements()                      # concrete changes computed from the log

The log is ``$BRAID_CACHE/decisions.jsonl`` unless a path is given (``BRAID_DECISION_LOG`` also moves it).
Performance is 0..1 (``meta.outcomes.evaluate``, a rating / 5); a decision counts as a success at
``SUCCESS`` or above. A refusal (``Infeasible``) is logged with ``decision=None`` and the constraints, so the
suggestions can name constraints that are often infeasible.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from braid.paths import cache_dir, setting
from meta.decision import BraidingDecision
from meta.features import MetaTask

SUCCESS = 0.5  # performance at which a decision counts as a success
LOW_SCORE = 0.5  # a task type whose mean performance is below this is named by the suggestions
RARE = 0.05  # a pool model in fewer than this share of decisions is "under-used"


def decision_log(path: str | Path | None = None) -> Path:
    return Path(path or setting("BRAID_DECISION_LOG") or cache_dir() / "decisions.jsonl")


def log_decision(
    task: Any,
    decision: BraidingDecision | None,
    performance: float | None = None,
    *,
    explanation: str | None = None,
    constraints: dict[str, Any] | None = None,
    user: str | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Append one decision (or, with ``decision=None``, a refusal under ``constraints``) to the log."""
    if performance is not None and not 0.0 <= performance <= 1.0:
        raise ValueError(f"performance is 0..1 (a rating / 5), got {performance}")
    record = {
        "time": time.time(),
        "task": MetaTask.of(task).model_dump(mode="json"),
        "decision": decision.model_dump(mode="json", exclude_none=True) if decision is not None else None,
        "pool": sorted(decision._pool) if decision is not None else [],
        "performance": performance,
        "explanation": explanation,
        "constraints": {k: v for k, v in (constraints or {}).items() if v is not None},
        "user": user,
    }
    log = decision_log(path)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def read_log(path: str | Path | None = None) -> list[dict[str, Any]]:
    log = decision_log(path)
    if not log.exists():
        return []
    rows = []
    for n, line in enumerate(log.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{log}:{n}: not a JSON line ({e})") from None
    return rows


@dataclass
class TypePattern:
    decisions: int = 0
    refused: int = 0
    models: Counter = field(default_factory=Counter)
    strategies: Counter = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None

    @property
    def success_rate(self) -> float | None:
        return sum(s >= SUCCESS for s in self.scores) / len(self.scores) if self.scores else None


class Patterns(BaseModel):
    """What the log shows per task type, and over all of it."""

    by_type: dict[str, dict[str, Any]]
    models: dict[str, int]
    pool: list[str]
    refusals: dict[str, int]  # constraint name -> refusals under it
    decisions: int


def analyze_decision_patterns(
    path: str | Path | None = None, plot: str | Path | None = None, show: bool = True
) -> Patterns:
    """Per task type: decisions, refusals, the models and strategies chosen, mean performance and success
    rate; printed as a table (``show``) and drawn to ``plot`` (a PNG; default: beside the log)."""
    rows = read_log(path)
    types: dict[str, TypePattern] = defaultdict(TypePattern)
    models, pool, refusals = Counter(), set(), Counter()
    for r in rows:
        t = types[r["task"]["type"]]
        pool.update(r.get("pool", []))
        if r["decision"] is None:
            t.refused += 1
            refusals.update(r.get("constraints", {}).keys())
            continue
        t.decisions += 1
        t.models.update(r["decision"]["members"])
        models.update(r["decision"]["members"])
        t.strategies[r["decision"]["strategy"]] += 1
        if r.get("performance") is not None:
            t.scores.append(r["performance"])
    patterns = Patterns(
        by_type={k: _summary(t) for k, t in sorted(types.items())},
        models=dict(models), pool=sorted(pool | set(models)), refusals=dict(refusals), decisions=len(rows),
    )  # fmt: skip
    if show:
        _print(patterns)
    if rows:
        _plot(patterns, Path(plot) if plot else decision_log(path).with_suffix(".png"))
    return patterns


def _summary(t: TypePattern) -> dict[str, Any]:
    return {
        "decisions": t.decisions, "refused": t.refused, "models": dict(t.models.most_common()),
        "strategies": dict(t.strategies.most_common()), "mean_performance": t.mean,
        "success_rate": t.success_rate, "rated": len(t.scores),
    }  # fmt: skip


def _print(p: Patterns) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("task type", "decisions", "refused", "models (uses)", "strategies", "mean perf.", "success")
    for name, s in p.by_type.items():
        table.add_row(
            name, str(s["decisions"]), str(s["refused"]),
            ", ".join(f"{m} {n}" for m, n in s["models"].items()),
            ", ".join(f"{m} {n}" for m, n in s["strategies"].items()),
            "-" if s["mean_performance"] is None else f"{s['mean_performance']:.2f}",
            "-" if s["success_rate"] is None else f"{s['success_rate']:.0%}",
        )  # fmt: skip
    Console().print(table)


def _plot(p: Patterns, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(p.by_type)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    bottom = [0] * len(names)
    for model in p.pool:
        uses = [p.by_type[n]["models"].get(model, 0) for n in names]
        left.bar(names, uses, bottom=bottom, label=model)
        bottom = [b + u for b, u in zip(bottom, uses, strict=True)]
    left.set_title("models chosen per task type")
    left.legend(fontsize=7)
    rates = [p.by_type[n]["success_rate"] or 0.0 for n in names]
    right.bar(names, rates, color="tab:green")
    right.set_ylim(0, 1)
    right.set_title(f"success rate (performance >= {SUCCESS})")
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def suggest_improvements(
    path: str | Path | None = None, pool: list[str] | None = None, show: bool = True
) -> list[str]:
    """Concrete changes the log argues for: pool models the agent rarely or never picks, task types that
    score low, constraints that are often refused."""
    p = analyze_decision_patterns(path, show=False)
    decided = sum(s["decisions"] for s in p.by_type.values())
    out = []
    for model in sorted(set(pool or p.pool)):
        share = p.models.get(model, 0) / decided if decided else 0.0
        if share < RARE:
            out.append(f"model {model} is in {share:.0%} of {decided} decisions: drop it from the pool, or "
                       "add sweep records of tasks it serves so the agent learns when it helps")  # fmt: skip
    for name, s in p.by_type.items():
        if s["mean_performance"] is not None and s["mean_performance"] < LOW_SCORE:
            best = next(iter(s["models"]), "?")
            out.append(f"task type {name} scores {s['mean_performance']:.2f} on average over {s['rated']} rated "
                       f"decisions (most used model {best}): sweep it (braid tune) and retrain the agent, or "
                       "add a specialist for it")  # fmt: skip
        asked = s["decisions"] + s["refused"]
        if s["refused"] and s["refused"] / asked >= 0.2:
            out.append(f"task type {name}: {s['refused']} of {asked} requests refused as infeasible: loosen "
                       "the limits or add a smaller/faster model")  # fmt: skip
    for constraint, n in sorted(p.refusals.items(), key=lambda kv: -kv[1]):
        out.append(f"constraint {constraint} was part of {n} refused request(s)")
    if show:
        for line in out or ["nothing to suggest: every model is used and every task type scores well"]:
            print(f"- {line}")
    return out
