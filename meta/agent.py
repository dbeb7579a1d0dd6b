"""``MetaBraider``: decides which models to braid, where, how and with which parameters, for a task.

Decisions are made by scoring every candidate configuration of the pool with the decision net's quality and
cost predictions and taking the best one that meets the constraints (compute budget: exact, from the pool's
parameter counts; latency and accuracy: predicted). When no candidate surely meets a latency limit but some
do on their expected decode ms, the one closest to it is the answer, flagged "latency at risk"; only a
request nothing meets even so is ``Infeasible``. The selector heads give the policy's own probabilities,
which the explanation reports and which imitation of the sweep's best configs trains.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from meta.architectures import ArchitectureLibrary
from meta.calibration import Calibration, raw, share
from meta.decision import BraidingDecision, Candidates, create_braided_model
from meta.explain import explain
from meta.features import (
    DOMAIN_SLOTS,
    TYPE_SLOTS,
    Constraints,
    MetaTask,
    as_other,
    encode_model,
    encode_task,
)
from meta.learn import Feedback
from meta.net import DecisionLogits, DecisionNet, DecisionSpace
from meta.outcomes import Example, evaluate
from meta.personal import Personal
from meta.policy import policy_log_prob
from meta.pool import describe_pool

if TYPE_CHECKING:
    from meta.probe import Measured

FORMAT = "llm-braid-meta/2"  # 2: model tokens carry task affinity


class Infeasible(ValueError):
    """No candidate meets the constraints; ``closest`` is the decision that misses them by the least."""

    def __init__(self, message: str, closest: BraidingDecision):
        super().__init__(message)
        self.closest = closest


def _one_task(task_info: Any, task: Any) -> Any:
    """The seed passes a task as ``task_info=`` or ``task=``: one of them, not both."""
    if (task_info is None) == (task is None):
        raise TypeError("give the task once, as task_info=... or task=...")
    return task if task_info is None else task_info


class MetaBraider(nn.Module):
    def __init__(
        self,
        model_pool: list[Any],
        space: DecisionSpace | None = None,
        paths: dict[str, str] | None = None,
        dim: int = 64,
    ):
        super().__init__()
        self.pool, found = describe_pool(model_pool)  # the seed's dicts, ModelFeatures or loaded models
        names = [m["name"] for m in self.pool]
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"the model pool needs at least 2 models with distinct names, got {names}")
        self.space = space or DecisionSpace()
        self.paths = {**found, **dict(paths or {})}
        self.net = DecisionNet(self.space, dim)
        self.candidates = Candidates(names, self.space)
        params = torch.tensor([float(m["parameters"]) for m in self.pool])
        self.compute_share = (self.candidates.members @ params) / params.sum()  # (C,)
        # the margins and measured costs that keep constraints true (``meta.calibration``); pretraining
        # calibrates them from the records and hands the result over through ``calibrated``
        self.calibration = Calibration.empty(len(self.candidates))
        self.trained_pool = list(names)  # the pool the loaded state was trained on (``load``)
        self._feedback: Feedback | None = None
        self.personal = Personal(self.candidates)  # per-user corrections (``meta.personal``)
        self.architectures = ArchitectureLibrary()  # searched refinements of grid choices, per task type

    @property
    def names(self) -> list[str]:
        return self.candidates.pool

    # -- inputs -------------------------------------------------------------------------------------------
    def encode(
        self,
        task: Any,
        constraints: Constraints | None = None,
        unseen: bool = False,
        identity_dropout: float = 0.0,
    ) -> DecisionLogits:
        """The decision net's outputs for ``task``. A task type pretraining never saw (or any, with ``unseen``;
        or a random share ``identity_dropout`` of calls, in training) reads as "other": its type and the
        models' domain one-hots hidden, so it is judged by its text, capabilities and model affinity."""
        meta_task = MetaTask.of(task)
        task_vec = encode_task(meta_task, constraints)[None]  # (1, TASK_DIM)
        models = torch.stack([encode_model(m, meta_task) for m in self.pool])[None]  # (1, N, MODEL_DIM)
        if (
            unseen
            or self._unseen(meta_task)
            or (identity_dropout and float(torch.rand(())) < identity_dropout)
        ):
            task_vec, models = as_other(task_vec, TYPE_SLOTS), as_other(models, DOMAIN_SLOTS)
        return self.net(task_vec, models, torch.ones(1, len(self.pool), dtype=torch.bool))

    def _unseen(self, task: MetaTask) -> bool:
        seen = self.calibration.seen_types
        return bool(seen) and task.type not in seen

    @property
    def seen_types(self) -> list[str]:
        return list(self.calibration.seen_types)

    def calibrated(self, calibration: Calibration) -> None:
        """Hold ``calibration`` (what ``meta.learn.calibrate`` returned) from now on."""
        if len(calibration.measured_ms) != len(self.candidates):
            raise ValueError(
                f"a calibration of {len(calibration.measured_ms)} candidates for {len(self.candidates)}"
            )
        self.calibration = calibration

    def predict(self, out: DecisionLogits) -> tuple[torch.Tensor, float, float]:
        """Predicted (score, log ms, log MB) per candidate (C, 3), with the predicted lr and temperature."""
        lr01, temp01 = (float(x) for x in out.continuous[0])
        c = self.candidates
        pred = self.net.score(out, c.members[None], c.anchor[None], c.config(lr01, temp01)[None])[0]
        return pred, lr01, temp01

    # -- deciding -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(
        self,
        task_info: Any = None,
        compute_budget: float | None = None,
        latency_requirement: float | None = None,
        accuracy_target: float | None = None,
        *,
        task: Any = None,
        min_score: float | None = None,
        user: str | None = None,
        measured: Measured | None = None,
    ) -> BraidingDecision:
        """The best braid for a task under the constraints. ``accuracy_target`` is quality 0..1 (the share of
        the best score measured for the task's type, ``meta.calibration.share``); ``min_score`` the same limit
        on the raw score scale. ``user``: decide with that user's learned correction (``meta.personal``).
        ``measured``: scores and decode ms measured on this task (``meta.probe``) in place of predictions."""
        limits = Constraints(compute_budget=compute_budget, latency_requirement=latency_requirement,
                             accuracy_target=accuracy_target, min_score=min_score)  # fmt: skip
        return self._decide(_one_task(task_info, task), limits, user=user, measured=measured)[0]

    @torch.no_grad()
    def decide_among(self, task_info: Any, indices: list[int], **constraints: Any) -> BraidingDecision:
        """The best of some candidates only (e.g. the configurations a benchmark has measured)."""
        user, measured = constraints.pop("user", None), constraints.pop("measured", None)
        return self._decide(task_info, Constraints(**constraints), indices, user, measured)[0]

    @torch.no_grad()
    def scores(
        self, task_info: Any, user: str | None = None
    ) -> tuple[torch.Tensor, DecisionLogits, float, float]:
        """Predicted (score, log ms, log MB) per candidate (C, 3) for a task, with measured decode ms where
        the records have it and ``user``'s correction on the score; and the net's outputs, lr and temperature.
        Constraints are not an input: pretraining never varied them, so they only filter."""
        out = self.encode(task_info)
        pred, lr01, temp01 = self.predict(out)
        known = ~self.calibration.measured_ms.isnan()
        pred[known, 1] = self.calibration.measured_ms[known].log()
        if (offsets := self.personal.offsets(user)) is not None:
            pred[:, 0] += offsets
        return pred, out, lr01, temp01

    @torch.no_grad()
    def probability(self, task_info: Any, decision: BraidingDecision) -> float:
        """The policy's probability of ``decision`` for this task (its selector heads, ``meta.policy``): what
        an online update moves, so a rating's effect can be shown as before and after."""
        return float(policy_log_prob(self.encode(MetaTask.of(task_info)), self, decision).exp())

    def reference(self, task_info: Any, pred: torch.Tensor | None = None) -> float:
        """The raw score that is quality 1.0 for this task (``Calibration.reference``)."""
        if pred is None:
            pred = self.scores(task_info)[0]
        return self.calibration.reference(MetaTask.of(task_info).type, float(pred[:, 0].max()))

    def quality(self, task_info: Any, score: float) -> float:
        """A raw score as 0..1 quality for this task; ``raw_score`` is the inverse."""
        return share(score, self.reference(task_info))

    def raw_score(self, task_info: Any, quality: float) -> float:
        return raw(quality, self.reference(task_info))

    def _decide(
        self,
        task_info: Any,
        limits: Constraints,
        among: list[int] | None = None,
        user: str | None = None,
        measured: Measured | None = None,
    ) -> tuple[BraidingDecision, dict[str, Any]]:
        pred, out, lr01, temp01 = self.scores(task_info, user)
        if measured is not None:
            pred = measured.applied(pred)
        violation = self.violations(task_info, pred, limits, among, measured=measured)  # (C, 3)
        feasible = (violation == 0).all(-1)
        likeliest = (
            None if feasible.any() else self._likeliest(task_info, pred, limits, among, violation, measured)
        )
        if not feasible.any() and likeliest is None:
            i = int(violation.sum(-1).argmin())
            closest = self._decision(i, lr01, temp01, pred)
            raise Infeasible(f"infeasible: {self._describe(violation[i], limits)}; closest option: "
                             f"{closest.model_dump_json(exclude_none=True)}", closest)  # fmt: skip
        score = pred[:, 0].masked_fill(~feasible, -math.inf)
        allowed = (
            pred[:, 0] if among is None else pred[:, 0].masked_fill(violation.isinf().any(-1), -math.inf)
        )
        i = int(score.argmax()) if likeliest is None else likeliest
        free = int(allowed.argmax())
        bound = [] if i == free else self._describe(violation[free], limits, names_only=True)
        info = {"out": out, "pred": pred, "index": i, "bound": bound, "feasible": int(feasible.sum()),
                "reference": self.reference(task_info, pred), "user": user,
                "latency_at_risk": likeliest is not None}  # fmt: skip
        decision = self._decision(i, lr01, temp01, pred)
        decision.refined_by(self.architectures.get(MetaTask.of(task_info).type, decision.structure().key()))
        return decision, info

    def _likeliest(
        self, task_info: Any, pred: torch.Tensor, limits: Constraints, among: list[int] | None,
        violation: torch.Tensor, measured: Measured | None = None,
    ) -> int | None:  # fmt: skip
        """When no candidate surely meets the latency limit but some do on their expected decode ms (the
        slowest measured, or the prediction, without the slack for how costs vary from task to task): the
        one closest to surely meeting it, with every other limit held as before. None when none can."""
        if limits.latency_requirement is None:
            return None
        expected = self.violations(task_info, pred, limits, among, False, measured)  # (C, 3)
        return closest_on_latency([violation], [expected])

    def violations(
        self,
        task_info: Any,
        pred: torch.Tensor,
        limits: Constraints,
        among: list[int] | None = None,
        latency_slack: bool = True,
        measured: Measured | None = None,
    ) -> torch.Tensor:
        """(C, 3): how far each candidate misses the compute budget, the latency limit and the score limits
        for this task, given its predictions ``pred`` (``scores``); outside ``among``: infinitely far.
        ``latency_slack=False`` judges latency on the expected decode ms, without the calibrated slack.
        What ``measured`` holds was measured on this task: it needs neither margin nor slack."""
        task = MetaTask.of(task_info)
        margin = torch.full((len(pred),), self.calibration.score_margin[int(self._unseen(task))])
        slack = self.calibration.latency_slack() if latency_slack else torch.zeros(len(pred))
        if measured is not None:
            margin[list(measured.score)], slack[list(measured.ms)] = 0.0, 0.0
        violation = self._violations(pred, limits, task.type, margin, among, slack)  # (C, 3)
        if among is not None:  # everything else counts as infinitely far from feasible
            outside = torch.ones(len(pred), dtype=torch.bool)
            outside[among] = False
            violation[outside] = math.inf
        return violation

    def _decision(self, i: int, lr01: float, temp01: float, pred: torch.Tensor) -> BraidingDecision:
        decision = self.candidates.decision(i, lr01, temp01, pred[i].tolist())
        decision.built_from(self.paths, self.names)  # so create_braided_model(decision) needs nothing else
        return decision

    def _violations(
        self,
        pred: torch.Tensor,
        c: Constraints,
        task_type: str,
        margin: torch.Tensor,
        among: list[int] | None,
        slack: torch.Tensor,
    ) -> torch.Tensor:
        """(C, 3): how far each candidate misses the compute budget, the latency limit and the score limits
        (0 = met), its decode ms moved by its log ``slack`` (C,). A raw ``min_score`` and an
        ``accuracy_target`` against a measured best hold on the prediction minus the score ``margin`` (C,:
        what the agent may overshoot). A type never measured has no best to be a share of, so its target is relative to the best the request allows: the best predicted
        candidate within the budget and the latency limit on its expected decode ms (and ``among``),
        prediction to prediction, where a shared overshoot cancels. The expected, not the slackened, ms: the
        best the request allows is judged on what the candidates will likely cost, and a good candidate the
        slack merely doubts must not lower the bar for the others."""
        zero = torch.zeros(len(pred))
        budget = zero if c.compute_budget is None else (self.compute_share - c.compute_budget).clamp(min=0)

        def over(log_slack: torch.Tensor | float) -> torch.Tensor:  # (C,) relative excess over the limit
            if c.latency_requirement is None:
                return zero
            ms = (pred[:, 1] + log_slack).exp()
            return ((ms - c.latency_requirement) / c.latency_requirement).clamp(min=0)

        latency = over(slack)
        accuracy = zero if c.min_score is None else (c.min_score - (pred[:, 0] - margin)).clamp(min=0)
        if c.accuracy_target is not None:
            best = self.calibration.best_score.get(task_type)
            low = pred[:, 0] - (margin if best is not None else 0.0)
            floor = raw(
                c.accuracy_target,
                best if best is not None else self._best_allowed(pred, budget, over(0.0), among),
            )
            accuracy = torch.maximum(accuracy, (floor - low).clamp(min=0))
        return torch.stack([budget, latency, accuracy], -1)

    @staticmethod
    def _best_allowed(
        pred: torch.Tensor, budget: torch.Tensor, latency: torch.Tensor, among: list[int] | None
    ) -> float:
        allowed = (budget == 0) & (latency == 0)
        if among is not None:
            inside = torch.zeros_like(allowed)
            inside[among] = True
            allowed &= inside
        return float(pred[allowed, 0].max() if allowed.any() else pred[:, 0].max())

    @staticmethod
    def _describe(v: torch.Tensor, c: Constraints, names_only: bool = False) -> Any:
        names = ["compute_budget", "latency_requirement", "accuracy_target"]
        missed = [n for n, x in zip(names, v.tolist(), strict=True) if x > 0]
        if names_only:
            return missed
        shown = {n: getattr(c, n) for n in missed}
        if "accuracy_target" in missed and c.accuracy_target is None:  # the raw form set the floor
            shown = {**{k: v for k, v in shown.items() if k != "accuracy_target"}, "min_score": c.min_score}
        return "no candidate meets " + ", ".join(f"{n}={x}" for n, x in shown.items())

    @torch.no_grad()
    def forward_with_explanation(
        self, task: Any = None, *, task_info: Any = None, user: str | None = None, **constraints: Any
    ) -> tuple[BraidingDecision, str]:
        decision, info = self._decide(_one_task(task_info, task), Constraints(**constraints), user=user)
        return decision, explain(self, decision, info)

    # -- learning -----------------------------------------------------------------------------------------
    def learn_from_feedback(
        self,
        task_info: Any = None,
        decision: BraidingDecision | None = None,
        performance: float | None = None,
        baseline: float | None = None,
        *,
        task: Any = None,
        score: float | None = None,
        user: str | None = None,
    ) -> float:
        """One online update from how a decision did on a task.

        ``performance`` is quality 0..1 (an evaluation, a 1-5 rating / 5) and ``score`` the same on the raw
        scale; ``baseline`` is on the scale given. Called with one argument, it is an example
        (``meta.outcomes.Example``: a task with an outcome, or a prompt and expected output to run) and
        the agent also adapts its scorer on the examples of that task type seen so far (few-shot). With a
        ``user``, only that user's correction learns (``meta.personal``): nobody else's decisions move.
        """
        if decision is None and performance is None and score is None:
            return self._learn_example(Example.model_validate(_one_task(task_info, task)))
        info = _one_task(task_info, task)
        if decision is None or (performance is None) == (score is None):
            raise TypeError("learn_from_feedback needs a decision and one of performance (0..1) or score")
        for name, value in (("performance", performance), ("baseline", baseline if score is None else None)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"{name} is quality 0..1 (a rating / 5), got {value}; pass a raw score as score="
                )
        reference = self.reference(info)
        target = score if score is not None else raw(performance, reference)
        if baseline is not None and score is None:
            baseline = raw(baseline, reference)
        if user is not None:
            i = self.candidates.index_of(decision)
            return self.personal.update(user, i, float(self.scores(info)[0][i, 0]), target) ** 2
        return self.online_learner().learn(info, decision, target, baseline)

    def _learn_example(self, example: Example) -> float:
        decision, performance = example.decision, example.outcome
        if performance is None:  # run it: the agent's choice on the example's prompt, scored
            decision = self(example.info, user=example.user)
            with create_braided_model(decision) as braided:
                output = braided.generate(example.data)
            performance = evaluate(output, example.expected_output, example.metric)
        loss = self.learn_from_feedback(example.info, decision, performance, user=example.user)
        if example.user is None:
            self.online_learner().adapt_on(
                MetaTask.of(example.info), decision, raw(performance, self.reference(example.info))
            )
        return loss

    def online_learner(self, **settings: Any) -> Feedback:
        """The agent's online learner (its optimiser state, baselines and replay buffer), made on first use
        with ``settings`` (``meta.learn.Feedback``'s); every online update goes through this one."""
        if self._feedback is None:
            self._feedback = Feedback(self, **settings)
        return self._feedback

    def create_braided_model(self, decision: BraidingDecision, placement: str = "local", ray_placement=None):
        """The braid ``decision`` names, over this pool's checkpoints (``meta.decision.create_braided_model``)."""
        return create_braided_model(decision, self.paths, placement=placement, ray_placement=ray_placement)

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        torch.save({"format": FORMAT, "pool": self.pool, "space": self.space.model_dump(), "paths": self.paths,
                    "dim": self.net.task_in[0].out_features, "state": self.state_dict(),
                    "calibration": self.calibration.to_dict(), "personal": self.personal.state(),
                    "architectures": self.architectures.state()}, path)  # fmt: skip

    @classmethod
    def load(cls, path: str | Path, model_pool: list[Any] | None = None) -> MetaBraider:
        """Load a saved agent; ``model_pool`` may differ from the one it was trained on (features carry over)."""
        blob = torch.load(path, weights_only=False)
        if blob.get("format") != FORMAT:
            raise ValueError(f"{path} is not a meta-braider checkpoint (format {blob.get('format')!r})")
        agent = cls(model_pool or blob["pool"], DecisionSpace(**blob["space"]), blob["paths"], blob["dim"])
        state = {k: v for k, v in blob["state"].items() if k not in CALIBRATION_BUFFERS}
        missing, unexpected = agent.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: state does not fit (missing {missing}, unexpected {unexpected})")
        trained_pool = [m["name"] for m in blob["pool"]]
        same = trained_pool == agent.names
        old = agent.candidates if same else Candidates(trained_pool, agent.space)  # the grid it was saved on
        saved = (
            Calibration.from_dict(blob["calibration"]) if "calibration" in blob
            else Calibration.from_buffers(blob["state"], blob.get("seen_types", []), len(old))
        )  # fmt: skip
        agent.calibrated(
            saved if same else saved.remapped(_carried(old, agent, saved), len(agent.candidates))
        )
        agent.trained_pool = trained_pool
        agent.architectures.restore(blob.get("architectures", {}))
        if same:  # user corrections are per candidate part: they carry only to the same grid
            agent.personal.restore(blob.get("personal", {}))
        return agent


def closest_on_latency(sure: list[torch.Tensor], expected: list[torch.Tensor]) -> int | None:
    """From per-view violations (each (C, 3)) with the latency slack (``sure``) and without it (``expected``):
    the candidate every view expects to meet every limit that comes closest to surely meeting the latency
    limit (its excess summed over the views); None when no candidate is expected to. One view is an agent's,
    several an arbiter's proposers'."""
    hopeful = torch.stack([(v == 0).all(-1) for v in expected]).all(0)  # (C,)
    if not hopeful.any():
        return None
    risk = torch.stack([v[:, 1] for v in sure]).sum(0)  # (C,)
    return int(risk.masked_fill(~hopeful, math.inf).argmin())


# buffers in which agents saved before ``meta.calibration`` kept their calibration
CALIBRATION_BUFFERS = ("latency_margin", "measured_ms", "measured_margin", "measured_spread", "score_margin")


def _carried(old: Candidates, agent: MetaBraider, saved: Calibration) -> dict[int, int]:
    """Each measured old candidate's index -> the same configuration's index on the agent's grid (members
    that left the pool drop out)."""
    index = {}
    for i in (~saved.measured_ms.isnan()).nonzero().flatten().tolist():
        try:
            index[i] = agent.candidates.index_of(old.decision(i, 0.5, 0.0))
        except (KeyError, ValueError):
            continue
    return index
