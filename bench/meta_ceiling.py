"""How far each kind of knowledge is from meeting the constraints: the held-out agent told the truth.

bench/meta.py judges the agent's constraint answers on a task type it never saw. A violation comes from one of
two things the agent cannot know there: the held-out task's scores (its ranking of near-best braids) or its
decode ms (a cross-tokenizer braid's cost follows how the members' tokenizers split that text). Telling the
agent one of them exactly, on the same draws, gives the ceiling a perfect predictor of it would reach; telling
it both checks the decision rule itself (every satisfiable request met, none refused).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from unittest import mock

import torch

KNOWLEDGE = ("score", "ms", "both")


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
        "measured configs, `bench/meta_ceiling.py`): " + "; ".join(parts) + "."
    )
