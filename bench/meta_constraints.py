"""The constraint checks of bench/meta.py, and their ceilings: the held-out agent told the truth.

``constraint_checks`` draws the seed's constraints (compute budgets, latency limits, a 0..1 accuracy_target or a
raw score floor) that some measured configuration meets and judges the agent's answers on the measurements.
A violation comes from one of two things the agent cannot know on a task type it never saw: the task's scores
(its ranking of near-best braids) or its decode ms (some cross-tokenizer braids decode one type's text 2x
slower than any other's). ``told`` gives the agent one of them exactly; on the same draws that is the
ceiling a perfect predictor of it would reach, and told both it checks the decision rule itself (every
satisfiable request met, none refused).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from unittest import mock

import torch

from meta.calibration import raw
from meta.calibration import share as q_share

KNOWLEDGE = ("score", "ms", "both")


def constraint_checks(
    agent: Any, truth: Any, task: str, rng: random.Random, n: int, misses: list | None = None,
    decider: Any = None,
) -> list[tuple[str, str]]:  # fmt: skip
    """Random compute budgets and latency limits, in a third of the draws a raw score floor (``min_score``)
    and in another third a 0..1 ``accuracy_target`` (quality: a score's likelihood share of the best; for a
    held-out type, the best measured config within the other limits), that some measured config meets:
    (kind, outcome), the outcome "met" when the choice meets them in truth (measured latency and score, exact
    parameter share), "violated" when not, "refused" when the agent answered infeasible. ``misses`` gets
    (kind, the limits a violating choice missed) per violation. ``decider``: who answers in the agent's
    place (its ``decide_among``), e.g. a ``meta.probe.Probe`` over it."""
    from meta import Infeasible

    share = {c: float(agent.compute_share[c]) for c in truth.configs}
    ms, score, info = truth.ms[task], truth.score[task], truth.tasks[task]
    out = []
    for _ in range(n):
        budget = rng.uniform(min(share.values()), 1.0)
        limit = rng.uniform(min(ms.values()), max(ms.values()))
        kind = rng.choice(("none", "min_score", "accuracy_target"))
        low, high = min(score.values()), max(score.values())
        # a held-out type has no measured best: its target is a share of the best the other limits allow
        allowed = [score[c] for c in truth.configs if share[c] <= budget + 1e-9 and ms[c] <= limit]
        accuracy = {
            "none": {},
            "min_score": {"min_score": rng.uniform(low, high)},
            "accuracy_target": {"accuracy_target": rng.uniform(q_share(low, high), 1.0)},
        }[kind]
        floor = accuracy.get("min_score")
        if "accuracy_target" in accuracy and allowed:
            floor = raw(accuracy["accuracy_target"], max(allowed))

        def missed(c: int, budget=budget, limit=limit, floor=floor) -> tuple[str, ...]:
            return tuple(name for name, ok in (("budget", share[c] <= budget + 1e-9), ("latency", ms[c] <= limit),
                         ("score", floor is None or score[c] >= floor - 1e-9)) if not ok)  # fmt: skip

        def meets(c: int) -> bool:
            return not missed(c)

        if not any(meets(c) for c in truth.configs):
            continue
        try:
            d = (decider or agent).decide_among(
                info, truth.configs, compute_budget=budget, latency_requirement=limit, **accuracy
            )
        except Infeasible:
            out.append((kind, "refused"))
            continue
        why = missed(agent.candidates.index_of(d))
        out.append((kind, "violated" if why else "met"))
        if why and misses is not None:
            misses.append((kind, why))
    return out


def miss_breakdown(misses: list[tuple[str, tuple[str, ...]]]) -> str:
    """What the seed-form violations missed: per kind of request, how many missed each limit."""
    seed_form = [(k, why) for k, why in misses if k != "min_score"]
    if not seed_form:
        return "No seed-form request was violated."
    by = Counter((k, limit) for k, why in seed_form for limit in why)
    parts = [f"{k} requests missing {limit}: {n}" for (k, limit), n in sorted(by.items())]
    return f"The {len(seed_form)} seed-form violations, by the limit missed: " + ", ".join(parts) + "."


@contextmanager
def told(agent: Any, truth: Any, task: str, what: str) -> Iterator[Any]:
    """``agent`` predicting ``task``'s measured scores (``what="score"``), its measured decode ms ("ms") or
    both, for the measured configs; everything else (the net, the decision rule) as it is."""
    if what not in KNOWLEDGE:
        raise ValueError(f"what must be one of {KNOWLEDGE}, got {what!r}")
    scores = agent.scores

    def knowing(task_info: Any, user: str | None = None) -> tuple:
        pred, out, lr01, temp01 = scores(task_info, user)  # pred: (C, 3) score, log ms, log MB
        for c in truth.configs:
            if what in ("score", "both"):
                pred[c, 0] = truth.score[task][c]
            if what in ("ms", "both"):
                pred[c, 1] = math.log(truth.ms[task][c])
        return pred, out, lr01, temp01

    calibration = agent.calibration
    if what in ("ms", "both"):  # the told ms are this task's own: no other task's measurement, no slack
        calibration = replace(
            calibration,
            measured_ms=torch.full_like(calibration.measured_ms, math.nan),
            latency_margin=0.0,
        )
    with mock.patch.object(agent, "scores", knowing), mock.patch.object(agent, "calibration", calibration):
        yield agent


def summary(ceiling: dict[str, list[tuple[str, str]]]) -> str:
    """One sentence: met of answered and refused of satisfiable seed-form requests, per kind of knowledge."""
    if not ceiling:
        return ""
    parts = []
    for what, label in (("score", "its scores"), ("ms", "its decode ms"), ("both", "both")):
        kinds = Counter(o for k, o in ceiling.get(what, []) if k != "min_score")
        answered, n = kinds["met"] + kinds["violated"], sum(kinds.values())
        parts.append(
            f"told {label}: met {kinds['met']}/{answered} = {kinds['met'] / max(answered, 1):.1%}, "
            f"refused {kinds['refused']}/{n} = {kinds['refused'] / max(n, 1):.1%}"
        )
    return (
        "Ceilings (the same seed-form draws, the agent told the held-out task's measured values for the "
        "measured configs, `bench/meta_constraints.py`): " + "; ".join(parts) + "."
    )
