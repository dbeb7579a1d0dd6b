"""What calibration learned about the meta-braider's own errors: one frozen object that ``meta.learn``'s
calibration returns and the agent holds (``MetaBraider.calibrated``), saved with it.

Constraints must hold in truth, not only in prediction, so the agent judges a candidate on its prediction
moved by these margins: decode ms measured by the sweep where it has them (a measured cost beats a
predicted one), and otherwise the predicted ms times the latency margin; scores minus the most the agent
has overshot a measured score, for a task type it has seen and for one it has not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch


@dataclass(frozen=True)
class Calibration:
    # per candidate: the slowest decode ms the records measured (NaN: never measured), and log(slowest /
    # fastest) of its own measurements: a config whose cost depends on the text gets that much slack
    measured_ms: torch.Tensor  # (C,)
    measured_spread: torch.Tensor  # (C,)
    # the log-slack a new measurement of a measured config may exceed the slowest seen (leave one out)
    measured_margin: float = 0.0
    # log-latency added to a predicted (never measured) cost before checking a limit
    latency_margin: float = 0.0
    # how far the predicted score may overshoot the truth: (for a seen task type, for an unseen one)
    score_margin: tuple[float, float] = (0.0, 0.0)
    # the task types pretraining saw: another one reads as "other" (see ``MetaBraider.encode``)
    seen_types: tuple[str, ...] = field(default=())
    # per task type, the best score measured for it: 1.0 on the 0..1 quality scale (``share``)
    best_score: dict[str, float] = field(default_factory=dict)
    # on a type never seen, the most a candidate scored above its prediction moved by the task's mean error
    # (leave one type out): how far an unmeasured candidate may beat it once a probe knows the bias
    transfer_doubt: float = 0.0

    @classmethod
    def empty(cls, num_candidates: int) -> Calibration:
        return cls(torch.full((num_candidates,), math.nan), torch.zeros(num_candidates))

    def reference(self, task_type: str, predicted_best: float) -> float:
        """The raw score that counts as quality 1.0 for a task type: the best measured for it, or (a type
        never measured) the best the agent predicts among its candidates."""
        return self.best_score.get(task_type, predicted_best)

    def latency_slack(self) -> torch.Tensor:
        """(C,) log-ms added to each candidate's decode ms before a latency limit is checked."""
        measured = self.measured_spread.clamp(min=self.measured_margin)
        return torch.where(self.measured_ms.isnan(), torch.tensor(self.latency_margin), measured)

    def with_costs(self, costs: dict[int, list[float]]) -> Calibration:
        """The measured-cost table from decode ms per candidate index. The shared margin is the most that
        one measurement exceeded the slowest of the others of the same config (leave one out): the maximum,
        not a quantile, since a new task is one more draw of that noise and a limit is a promise."""
        ms, spread = self.measured_ms.clone(), self.measured_spread.clone()
        excess = [
            math.log(x / max(xs[:j] + xs[j + 1 :]))
            for xs in costs.values() if len(xs) > 1 for j, x in enumerate(xs)
        ]  # fmt: skip
        for i, xs in costs.items():
            ms[i], spread[i] = max(xs), math.log(max(xs) / min(xs))
        margin = max([self.measured_margin, *excess])  # only grows, as the score margins
        return replace(self, measured_ms=ms, measured_spread=spread, measured_margin=margin)

    def remapped(self, index: dict[int, int], num_candidates: int) -> Calibration:
        """This table on another candidate grid (``index``: old candidate -> new), as when the pool grows."""
        ms, spread = torch.full((num_candidates,), math.nan), torch.zeros(num_candidates)
        for i, j in index.items():
            ms[j], spread[j] = self.measured_ms[i], self.measured_spread[i]
        return replace(self, measured_ms=ms, measured_spread=spread)

    def to_dict(self) -> dict[str, Any]:
        return {
            "measured_ms": self.measured_ms.tolist(), "measured_spread": self.measured_spread.tolist(),
            "measured_margin": self.measured_margin, "latency_margin": self.latency_margin,
            "score_margin": list(self.score_margin), "seen_types": list(self.seen_types),
            "best_score": dict(self.best_score), "transfer_doubt": self.transfer_doubt,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(
            torch.tensor(d["measured_ms"], dtype=torch.float32),
            torch.tensor(d["measured_spread"], dtype=torch.float32),
            float(d["measured_margin"]), float(d["latency_margin"]),
            (float(d["score_margin"][0]), float(d["score_margin"][1])), tuple(d["seen_types"]),
            {k: float(v) for k, v in d.get("best_score", {}).items()}, float(d.get("transfer_doubt", 0.0)),
        )  # fmt: skip

    @classmethod
    def from_buffers(cls, state: dict[str, torch.Tensor], seen_types: list[str], n: int) -> Calibration:
        """An agent saved before the calibration was one object kept it in buffers of its state."""
        empty = cls.empty(n)
        score = state.get("score_margin", torch.zeros(2))
        return cls(
            state.get("measured_ms", empty.measured_ms), state.get("measured_spread", empty.measured_spread),
            float(state.get("measured_margin", 0.0)), float(state.get("latency_margin", 0.0)),
            (float(score[0]), float(score[1])), tuple(seen_types),
        )  # fmt: skip


# Quality, the 0..1 scale users give targets and ratings on: a score's share of the reference score in
# likelihood terms. Scores are log-likelihoods per character (-ln char perplexity, or minus the correct
# answer's NLL per character), so exp(score - reference) is the per-character likelihood relative to the
# reference's: 0.9 means "within 10% of the best measured per-character likelihood for this task type".
QUALITY_FLOOR = 1e-3  # quality 0 maps here (ln 0 is -inf)


def share(score: float, reference: float) -> float:
    """A raw score as quality 0..1 against ``reference``."""
    return min(1.0, math.exp(min(score - reference, 0.0)))


def raw(quality: float, reference: float) -> float:
    """Quality 0..1 as the raw score it stands for against ``reference``."""
    return reference + math.log(max(quality, QUALITY_FLOOR))
