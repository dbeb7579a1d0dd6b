"""How the meta-braider learns.

- ``pretrain``: supervised, from sweep records. The scorer learns each tried configuration's score and cost
  for its task; the selector heads imitate each task's best configuration (so the policy starts sensible).
- ``Feedback``: online learning from (task, decision, performance). REINFORCE on the selector heads with a
  per-task-type running baseline and an entropy bonus, plus a regression step of the scorer on a replay
  buffer of everything seen (continuous learning without forgetting the sweep).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from meta.architectures import grid_projection, is_searched
from meta.calibration import Calibration, share
from meta.decision import BraidingDecision
from meta.features import MetaTask
from meta.policy import policy_entropy, policy_log_prob, sample_decision

if TYPE_CHECKING:
    from meta.agent import MetaBraider


@dataclass(frozen=True)
class Observation:
    """One configuration tried on one task: what the scorer learns from."""

    task: MetaTask
    decision: BraidingDecision
    score: float
    decode_ms: float | None = None
    memory_mb: float | None = None


def observations_from_records(agent: MetaBraider, records: list[Any]) -> list[Observation]:
    """Sweep records whose configuration lies on the agent's grid and pool (others are skipped). A searched
    architecture (``tune.arch``) counts as the grid configuration it refines, and enters the agent's
    architecture library, so that a decision of that configuration for that task type builds it: the
    observation is true of the decision only then (``meta.architectures``)."""
    out = []
    for r in records:
        c = r.config
        searched = is_searched(c)
        # the record validates its pool, so the anchor's depth is there
        spec = grid_projection(c, {m.name: m.layers for m in r.pool}[c.anchor]) if searched else c
        try:
            decision = BraidingDecision(
                members=tuple(sorted(spec.members)), anchor=spec.anchor, strategy=spec.strategy,
                fusion_points=spec.fusion_points, placement=spec.placement, fusion_dim=spec.fusion_dim,
                lr=c.lr, steps=c.steps, temperature=c.temperature,
            )  # fmt: skip
            agent.candidates.index_of(decision)
        except (ValueError, KeyError):
            continue
        task = MetaTask.of(r.task)
        if searched:
            agent.architectures.add(task.type, decision.structure().key(), c, r.metrics["score"])
        out.append(Observation(task, decision, r.metrics["score"], r.cost.decode_ms, r.cost.memory_mb))
    return out


def predictions(
    agent: MetaBraider, obs: list[Observation], unseen: bool = False, identity_dropout: float = 0.0
) -> tuple[torch.Tensor, list[Observation]]:
    """Predicted (score, log ms, log MB) of each observation's config for its task, (len(obs), 3), in the
    returned order; observations of one task share one pass of the decision net (``MetaBraider.encode``'s
    ``unseen`` and ``identity_dropout``)."""
    by_task: dict[str, list[Observation]] = defaultdict(list)
    for o in obs:
        by_task[o.task.model_dump_json()].append(o)
    s, c, preds, order = agent.space, agent.candidates, [], []
    for group in by_task.values():
        out = agent.encode(group[0].task, unseen=unseen, identity_dropout=identity_dropout)
        idx = [c.index_of(o.decision) for o in group]
        rows = torch.stack([
            c.config_row(i, *s.to_unit(o.decision.lr, o.decision.temperature))
            for o, i in zip(group, idx, strict=True)
        ])  # (G, candidate_dim)  # fmt: skip
        preds.append(agent.net.score(out, c.members[None, idx], c.anchor[None, idx], rows[None])[0])  # (G, 3)
        order += group
    return torch.cat(preds), order


def scorer_loss(
    agent: MetaBraider, obs: list[Observation], ranking: float = 0.0, identity_dropout: float = 0.0
) -> torch.Tensor:
    """Mean squared error of the predicted (score, log ms, log MB) over ``obs`` (missing costs ignored), plus
    ``ranking`` x a pairwise logistic loss on the order of scores within each task: choosing needs the order
    right on a new task more than the level (task types score on different scales)."""
    pred, order = predictions(agent, obs, identity_dropout=identity_dropout)
    target = torch.tensor([[o.score, math.log(o.decode_ms or 1), math.log(o.memory_mb or 1)] for o in order])
    known = torch.tensor([[1.0, float(bool(o.decode_ms)), float(bool(o.memory_mb))] for o in order])
    loss = (((pred - target) ** 2) * known).sum(-1).mean()
    if ranking:
        same = torch.tensor([[a.task == b.task for b in order] for a in order])  # (n, n)
        better = (target[:, None, 0] > target[None, :, 0]) & same  # pairs (i better than j)
        if better.any():
            margin = pred[:, None, 0] - pred[None, :, 0]  # (n, n)
            loss = loss + ranking * F.softplus(-margin[better]).mean()
    return loss


def imitation_loss(agent: MetaBraider, obs: list[Observation], identity_dropout: float = 0.0) -> torch.Tensor:
    """-log pi(best config of each task) for the selector heads, plus its lr and temperature."""
    best: dict[str, Observation] = {}
    for o in obs:
        key = o.task.model_dump_json()
        if key not in best or o.score > best[key].score:
            best[key] = o
    s, losses = agent.space, []
    for o in best.values():
        out = agent.encode(o.task, identity_dropout=identity_dropout)
        target = torch.tensor(s.to_unit(o.decision.lr, o.decision.temperature))
        losses.append(-policy_log_prob(out, agent, o.decision) + F.mse_loss(out.continuous[0], target))
    return torch.stack(losses).mean()


RANKING = 1.0  # weight of the within-task ranking loss in pretraining
IDENTITY_DROPOUT = 0.5  # share of pretraining examples whose task type and model domains read "other"


def difficulty(obs: list[Observation]) -> dict[str, float]:
    """Measured difficulty per task (its JSON): 1 - the mean quality its configurations reached, quality
    being a score's share of the task's best (``meta.calibration.share``). Easy: most braids do about as
    well as the best; hard: the choice matters and most choices are poor."""
    by_task: dict[str, list[float]] = defaultdict(list)
    for o in obs:
        by_task[o.task.model_dump_json()].append(o.score)
    return {k: 1.0 - sum(share(s, max(v)) for s in v) / len(v) for k, v in by_task.items()}


def curriculum_pools(obs: list[Observation], stages: int = 3) -> list[list[Observation]]:
    """Observation pools for a curriculum: stage k holds the easiest k/stages of the tasks."""
    hard = difficulty(obs)
    order = sorted(hard, key=hard.__getitem__)
    pools = []
    for k in range(1, stages + 1):
        keep = set(order[: max(1, round(len(order) * k / stages))])
        pools.append([o for o in obs if o.task.model_dump_json() in keep])
    return pools


def pretrain(
    agent: MetaBraider, obs: list[Observation], steps: int = 300, lr: float = 3e-3, batch: int = 32,
    seed: int = 0, progress: bool = False, transfer: bool = True, curriculum: bool = False, measured: bool = True,
) -> list[float]:  # fmt: skip
    """Supervised pretraining; returns the loss per step. ``transfer``: also pretrain one agent per task type
    without it, to learn how far predictions for a type never seen overshoot (the unseen score margin).
    ``curriculum``: easy tasks first (``curriculum_pools``: the steps split into stages that widen from the
    easiest third of the tasks to all of them) instead of every batch drawn from all. ``measured``: the
    scores are measurements (sweep records), so each type's best among them is its quality reference;
    adaptation passes feedback turned into scores, which must not set it."""
    if not obs:
        raise ValueError("no observations to pretrain on (no sweep record fits the agent's pool and grid)")
    rng, opt = random.Random(seed), torch.optim.AdamW(agent.parameters(), lr=lr)
    history = []
    seen = tuple(sorted({o.task.type for o in obs} | set(agent.calibration.seen_types)))
    agent.calibrated(replace(agent.calibration, seen_types=seen))  # the types it learns are seen from now on
    pools = curriculum_pools(obs) if curriculum else [obs]
    agent.train()
    for step in tqdm(range(steps), desc="pretrain meta-braider", disable=not progress):
        pool = pools[step * len(pools) // steps]
        sample = rng.sample(pool, min(batch, len(pool)))
        loss = scorer_loss(agent, sample, RANKING, IDENTITY_DROPOUT) + 0.1 * imitation_loss(
            agent, sample, IDENTITY_DROPOUT
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    agent.eval()
    calibration = calibrate_accuracy(agent, obs, calibrate_latency(agent, obs, agent.calibration), measured)
    agent.calibrated(calibration)
    if transfer:
        over, doubt = transfer_overshoot(
            agent, obs, dict(steps=steps, lr=lr, batch=batch, seed=seed, curriculum=curriculum)
        )
        seen_margin, unseen_margin = agent.calibration.score_margin
        agent.calibrated(replace(agent.calibration, score_margin=(seen_margin, max(unseen_margin, over)),
                                 transfer_doubt=max(agent.calibration.transfer_doubt, doubt)))  # fmt: skip
    return history


@torch.no_grad()
def calibrate_latency(
    agent: MetaBraider, obs: list[Observation], calibration: Calibration, quantile: float = 0.99
) -> Calibration:
    """``calibration`` with the latency margin set to the ``quantile`` of log(true / predicted) decode ms over
    ``obs``, and the measured-cost table updated from them."""
    timed = [o for o in obs if o.decode_ms]
    if not timed:
        return calibration
    pred, order = predictions(agent, timed)
    residuals = torch.tensor([math.log(o.decode_ms) for o in order]) - pred[:, 1]
    calibration = replace(calibration, latency_margin=max(0.0, float(residuals.quantile(quantile))))
    costs: dict[int, list[float]] = defaultdict(list)
    for o in timed:
        costs[agent.candidates.index_of(o.decision)].append(o.decode_ms)
    return calibration.with_costs(costs)


@torch.no_grad()
def calibrate_accuracy(
    agent: MetaBraider, obs: list[Observation], calibration: Calibration, measured: bool = True
) -> Calibration:
    """``calibration`` with the score margins: the most the predicted score overshot the measured one over
    ``obs``, with each task's type as it is, and read as a type never seen (how the agent predicts for a new
    type). Margins only grow: adapting on a few examples must not loosen what the full records taught."""
    seen, unseen = calibration.score_margin
    margins = (max(seen, overshoot(agent, obs)), max(unseen, overshoot(agent, obs, unseen=True)))
    best = dict(calibration.best_score)
    for o in obs if measured else []:  # each type's best measured score: quality 1.0 for it
        best[o.task.type] = max(best.get(o.task.type, -math.inf), o.score)
    return replace(calibration, score_margin=margins, best_score=best)


@torch.no_grad()
def overshoot(agent: MetaBraider, obs: list[Observation], unseen: bool = False) -> float:
    """The most the agent's predicted score exceeds the measured one over ``obs`` (0 when it never does)."""
    pred, order = predictions(agent, obs, unseen=unseen)
    return max(0.0, float((pred[:, 0] - torch.tensor([o.score for o in order])).max()))


def transfer_overshoot(agent: MetaBraider, obs: list[Observation], settings: dict) -> tuple[float, float]:
    """Leave one task type out, an agent pretrained on the other types: the most it overshoots the left-out
    type's scores, and the most it undershoots one once each task's mean error is taken out (``undershoot``);
    (0, 0) with fewer than two types. The global RNG is left as it was."""
    types = sorted({o.task.type for o in obs})
    worst, doubt = 0.0, 0.0
    with torch.random.fork_rng():
        for held in types if len(types) > 1 else []:
            other = type(agent)(agent.pool, agent.space, agent.paths, agent.net.task_in[0].out_features)
            pretrain(other, [o for o in obs if o.task.type != held], transfer=False, **settings)
            worst = max(worst, overshoot(other, [o for o in obs if o.task.type == held]))
            doubt = max(doubt, undershoot(other, [o for o in obs if o.task.type == held]))
    return worst, doubt


@torch.no_grad()
def undershoot(agent: MetaBraider, obs: list[Observation]) -> float:
    """The most a measured score exceeds its prediction moved by its task's mean error, over ``obs``: how far
    a candidate may beat what the agent expects of it once a task's shared bias is known (``meta.probe``)."""
    pred, order = predictions(agent, obs, unseen=True)
    error: dict[str, list[float]] = defaultdict(list)
    for o, p in zip(order, pred[:, 0].tolist(), strict=True):
        error[o.task.model_dump_json()].append(o.score - p)
    return max([0.0] + [max(e) - sum(e) / len(e) for e in error.values()])


class Feedback:
    """Online learning for one agent: REINFORCE with a baseline and an entropy bonus, and a replay buffer."""

    def __init__(self, agent: MetaBraider, lr: float = 1e-3, entropy: float = 0.01, buffer: int = 2048,
                 replay: int = 16, seed: int = 0):  # fmt: skip
        self.agent, self.entropy, self.replay = agent, entropy, replay
        self.opt = torch.optim.AdamW(agent.net.online_parameters(), lr=lr)  # the encoder stays as pretrained
        self.buffer: deque[Observation] = deque(maxlen=buffer)
        self.baseline: dict[str, float] = defaultdict(float)
        self.seen: dict[str, int] = defaultdict(int)
        self.examples: dict[str, list[Observation]] = defaultdict(list)  # one-argument feedback, per type
        self.rng = random.Random(seed)

    def sample(self, task: Any) -> BraidingDecision:
        """A decision drawn from the policy heads (exploration)."""
        return sample_decision(self.agent, MetaTask.of(task), self.rng)

    def learn(
        self, task_info: Any, decision: BraidingDecision, performance: float, baseline: float | None = None
    ) -> float:
        """One update. ``baseline``: what the performance is compared with (default: the running mean for the
        task type); a rating relative to the agent's own prediction passes that prediction."""
        task = MetaTask.of(task_info)
        key = task.type
        self.seen[key] += 1
        advantage = performance - (self.baseline[key] if baseline is None else baseline)
        self.baseline[key] += (performance - self.baseline[key]) / min(self.seen[key], 20)  # running mean
        self.agent.train()
        out = self.agent.encode(task)
        # REINFORCE moves the selector heads only and the replayed regression the scorer only: through the
        # shared encoder, rewards of off-policy or noisy decisions pulled the scorer's inputs around and undid
        # what it had learnt, and scorer steps moved the policy's inputs (a +1 could lower the decision's
        # probability). The encoder changes in pretraining and few-shot adaptation, not per rating.
        mask = torch.ones(out.model_states.shape[:2], dtype=torch.bool)  # (1, N)
        out = self.agent.net.heads(out.task_state.detach(), out.model_states.detach(), mask)
        loss = -advantage * policy_log_prob(out, self.agent, decision) - self.entropy * policy_entropy(out)
        self.buffer.append(Observation(task, decision, performance))
        replay = self.rng.sample(list(self.buffer), min(self.replay, len(self.buffer)))
        loss = loss + scorer_loss(self.agent, replay)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.agent.eval()
        return loss.item()

    def adapt_on(self, task: MetaTask, decision: BraidingDecision, score: float, steps: int = 20) -> None:
        """Few-shot: adapt the scorer on every example of this task type seen so far (the last 16), with as
        many replayed older observations (``adapt``)."""
        mine = self.examples[task.type]
        mine.append(Observation(task, decision, score))
        del mine[:-16]
        others = [o for o in self.buffer if o.task.type != task.type]
        adapt(self.agent, list(mine), others, steps=steps, seed=self.rng.randrange(2**31))


def adapt(
    agent: MetaBraider, examples: list[Observation], replay: list[Observation] | None = None, steps: int = 60,
    lr: float = 1e-3, seed: int = 0, measured: bool = False,
) -> list[float]:  # fmt: skip
    """Few-shot adaptation to a new task type from k observations, mixed with a replay of old ones (as many
    as the new) so what the agent knew is kept. ``measured``: the examples' scores are measurements (see
    ``pretrain``)."""
    rng = random.Random(seed)
    old = rng.sample(replay, min(len(replay), len(examples))) if replay else []
    return pretrain(agent, examples + old, steps=steps, lr=lr, batch=len(examples) + len(old), seed=seed,
                    transfer=False, measured=measured)  # fmt: skip
