"""Meta-braider evaluation on task types held out from pretraining, every config's quality measured by real
braids of the tiny zoo.

Ground truth: a fixed set of sampled configurations, each trained and scored on every task (two variants per
task type), stored as sweep records (cached: they take a while to measure). Leave one task type out: the
agent pretrains on the other types' records, then picks a configuration for each held-out task among the
measured ones. Regret is reported as a fraction of the gap between the per-task oracle and the best fixed
config (the one with the best mean rank on the training types). Baselines: random (its expectation), the best
fixed config, and a kNN over the records (tasks nearest by the task encoding, k tuned by leave-one-out).

The records are trained by ``--workers`` processes and kept per config as each finishes (a stopped run
resumes); their decode ms is then timed again one record at a time.

    python bench/meta.py [--configs 24] [--workers 2] [--records-only] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.meta_constraints import KNOWLEDGE, constraint_checks, miss_breakdown, told  # noqa: E402
from bench.meta_constraints import summary as ceiling_summary  # noqa: E402
from bench.report import markdown_table, write_section  # noqa: E402
from meta import DecisionSpace, MetaBraider, MetaTask  # noqa: E402
from meta.features import encode_task  # noqa: E402
from meta.learn import adapt, observations_from_records, pretrain  # noqa: E402

SPACE = DecisionSpace(steps=(20,), fusion_dims=(16,), fusion_points=(1, 2))
CACHE = (
    Path.home() / ".cache" / "llm-braid" / "bench-meta-records-v6.jsonl"
)  # v6: the output router is a switch times a competition (v5: evidence features, reading choice)


def tasks(smoke: bool):
    from tune.tasks import TaskSpec

    kinds = [("prose-lm", "language_modeling"), ("code-lm", "code_completion"), ("arith-qa", "arithmetic"),
             ("facts-qa", "fact_recall")]  # fmt: skip
    seeds = [0] if smoke else [0, 1]
    n_train, n_eval = (8, 4) if smoke else (32, 8)
    return [
        TaskSpec(name=f"{n}-{s}", type=t, complexity=2 + s, seed=s, n_train=n_train, n_eval=n_eval)
        for n, t in kinds for s in seeds
    ]  # fmt: skip


def measure_all(zoo, pool, specs, n_configs: int, path: Path, workers: int = 1) -> list:
    """Every sampled config on every task, as sweep records (re-uses the file when it covers the request).
    ``workers`` processes take one config at a time, those with the most cross-tokenizer members first (the
    character bridge is the slow part); each config's records are kept as it finishes, so a stopped run
    resumes."""
    from tune.records import load_records, write_records

    if path.exists():
        records = load_records(path)
        if len({r.trial_id.split("@")[0] for r in records}) >= n_configs and len(records) >= n_configs * len(
            specs
        ):
            return records
    agent, parts = MetaBraider(pool, SPACE), path.with_suffix(".parts")
    parts.mkdir(parents=True, exist_ok=True)
    picks = list(enumerate(random.Random(0).sample(range(len(agent.candidates)), n_configs)))
    part = lambda c, i: parts / f"c{c}-k{i}.jsonl"  # noqa: E731 (record number and candidate index)
    todo = sorted((p for p in picks if not part(*p).exists()), key=lambda p: -bridged(agent, pool, p[1]))
    if workers == 1:
        for c, i in todo:
            write_records(measure_config(zoo, pool, specs, c, i), part(c, i))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            jobs = {ex.submit(measure_config, zoo, pool, specs, *p): p for p in todo}
            for job in as_completed(jobs):
                write_records(job.result(), part(*jobs[job]))
    records = timed_quietly([r for c, i in picks for r in load_records(part(c, i))], zoo, specs)
    write_records(records, path)
    return records


def timed_quietly(records: list, zoo, specs) -> list:
    """The records with decode ms measured again one at a time in this process, once every worker is done:
    workers sharing the cores time each other, and the agent's latency slack would learn that noise. The
    braid's cost does not depend on its trained fusion weights, so each is timed as built."""
    from tune.trainable import build_braid, measure_cost

    prompts = {spec.name: spec.cost_prompt() for spec in specs}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker timed its trials; the evaluation after this keeps its threads
    out = []
    for r in tqdm(records, desc="decode ms, one at a time"):
        ms = measure_cost(build_braid(r.config, zoo, shared_members=True), prompts[r.task.name]).decode_ms
        out.append(r.model_copy(update={"cost": r.cost.model_copy(update={"decode_ms": ms})}))
    torch.set_num_threads(threads)
    return out


def bridged(agent: MetaBraider, pool: list, index: int) -> int:
    """How many of a candidate's members read through the character bridge (another tokenizer than the
    anchor's)."""
    d, tok = agent.candidates.decision(index, 0.5, 0.0), {m.name: m.tokenizer for m in pool}
    return sum(tok[m] != tok[d.anchor] for m in d.members)


def measure_config(zoo, pool, specs, c: int, index: int) -> list:
    """Record ``c``: candidate ``index`` trained and scored on every task."""
    from meta.trainer import measure
    from tune.records import SweepRecord

    torch.set_num_threads(1)
    decision, records, start = MetaBraider(pool, SPACE).candidates.decision(index, 0.5, 0.0), [], time.time()
    for spec in specs:
        m = measure(decision, spec, zoo)
        cost = {k: m[k] for k in ("trained_params", "decode_ms", "memory_mb")}
        metrics = {k: float(v) for k, v in m.items() if k in ("score", spec.info.metric)}
        records.append(SweepRecord(
            sweep="bench-meta", trial_id=f"c{c}@{spec.name}", task=spec.info, pool=tuple(pool),
            config=json.loads(m["choice"]), metrics=metrics, cost=cost, iterations=1,
            steps_trained=decision.steps, stopped_early=False,
        ))  # fmt: skip
        print(f"config {c}: {len(records)}/{len(specs)} tasks, {time.time() - start:.0f} s", flush=True)
    return records


class Truth:
    """Measured score and decode ms of every (task, config), with the configs as decisions on the grid."""

    def __init__(self, records: list, agent: MetaBraider):
        obs = observations_from_records(agent, records)
        self.tasks = {r.task.name: r.task for r in records}
        self.score: dict[str, dict[int, float]] = {t: {} for t in self.tasks}
        self.ms: dict[str, dict[int, float]] = {t: {} for t in self.tasks}
        for r, o in zip(records, obs, strict=True):
            i = agent.candidates.index_of(o.decision)
            self.score[r.task.name][i], self.ms[r.task.name][i] = o.score, r.cost.decode_ms
        self.configs = sorted(next(iter(self.score.values())))

    def z(self, task: str) -> dict[int, float]:
        vals = self.score[task]
        mu, sd = statistics.mean(vals.values()), statistics.pstdev(vals.values()) or 1.0
        return {c: (v - mu) / sd for c, v in vals.items()}

    def best_of(self, tasks: list[str]) -> int:
        """The config with the best mean z-score over ``tasks``."""
        return max(self.configs, key=lambda c: sum(self.z(t)[c] for t in tasks))


def knn_choice(truth: Truth, vecs: dict[str, torch.Tensor], task: str, pool: list[str], k: int) -> int:
    sims = sorted(pool, key=lambda t: -float(torch.cosine_similarity(vecs[task], vecs[t], dim=0)))
    return truth.best_of(sims[:k])


def tuned_k(truth: Truth, vecs: dict[str, torch.Tensor], train: list[str]) -> int:
    """k by leave-one-out regret on the training tasks."""

    def loss(k: int) -> float:
        total = 0.0
        for t in train:
            c = knn_choice(truth, vecs, t, [u for u in train if u != t], k)
            total += max(truth.score[t].values()) - truth.score[t][c]
        return total

    return min((1, 2, 3, 4, 5), key=loss)


def evaluate(records: list, pool: list, smoke: bool, alone: dict[str, float] | None = None) -> None:
    """``alone``: per task, the best member's score alone (a decision "beats its best member" above it)."""
    agent0 = MetaBraider(pool, SPACE)
    truth = Truth(records, agent0)
    vecs = {t: encode_task(MetaTask.of(info)) for t, info in truth.tasks.items()}
    types = sorted({info.type for info in truth.tasks.values()})
    rows, gaps, latencies, picks, checks = (
        {m: 0.0 for m in ("random", "best fixed", "kNN", "meta-braider", CURRICULUM, MULTI)},
        0.0,
        [],
        [],
        [],
    )
    rng = random.Random(0)
    curves: list[dict[str, list[float]]] = []
    for held in types:
        train = [t for t, info in truth.tasks.items() if info.type != held]
        test = [t for t, info in truth.tasks.items() if info.type == held]
        torch.manual_seed(0)
        agent = MetaBraider(pool, SPACE, dim=32)
        seen = [r for r in records if r.task.name in train]
        pretrain(agent, observations_from_records(agent, seen), steps=30 if smoke else 300)
        torch.manual_seed(0)  # the same agent and steps, its tasks in curriculum order (easy to hard)
        ordered = MetaBraider(pool, SPACE, dim=32)
        pretrain(
            ordered, observations_from_records(ordered, seen), steps=30 if smoke else 300, curriculum=True
        )
        arbiter = multi_agent(agent, pool, observations_from_records(agent, seen), smoke)
        fixed, k = truth.best_of(train), tuned_k(truth, vecs, train)
        UNSEEN_MARGIN.append(agent.calibration.score_margin[1])
        DOUBT.append(agent.calibration.transfer_doubt)
        agent.decide_among(truth.tasks[test[0]], truth.configs)  # warm: a served agent has decided before
        for t in test:
            info, s = truth.tasks[t], truth.score[t]
            oracle = max(s.values())
            start = time.perf_counter()
            chosen = agent0.candidates.index_of(agent.decide_among(info, truth.configs))
            latencies.append((time.perf_counter() - start) * 1e3)
            picks.append(chosen)
            in_order = agent0.candidates.index_of(ordered.decide_among(info, truth.configs))
            choice = {"random": statistics.mean(s.values()), "best fixed": s[fixed],
                      "kNN": s[knn_choice(truth, vecs, t, train, k)], "meta-braider": s[chosen],
                      CURRICULUM: s[in_order],
                      MULTI: s[agent0.candidates.index_of(arbiter.decide_among(info, truth.configs))]}  # fmt: skip
            for m, v in choice.items():
                rows[m] += oracle - v
            if alone is not None:
                BEATS.append((s[chosen] > alone[t], oracle > alone[t]))
            gaps += oracle - s[fixed]
            paired = forked(rng)  # the arbiter answers the very requests the single agent does
            for what in KNOWLEDGE:  # and the agent told this task's truth, for the ceilings
                with told(agent, truth, t, what):
                    CEILING.setdefault(what, []).extend(
                        constraint_checks(agent, truth, t, forked(rng), 5 if smoke else 40)
                    )
            probing = probe(agent, truth)  # measures on the held-out task before answering: same draws
            PROBED.extend(
                constraint_checks(agent, truth, t, forked(rng), 5 if smoke else 40, decider=probing)
            )
            PROBE_SPENT.append(probing.spent)
            checks += constraint_checks(agent, truth, t, rng, 5 if smoke else 40, MISSES)
            MULTI_CHECKS.extend(constraint_checks(arbiter, truth, t, paired, 5 if smoke else 40))
        FEW_SHOT.append(few_shot(agent, records, pool, truth, held, smoke))
        curves.append(online(agent, truth, vecs, test, 4 if smoke else 30))
    plot_online(curves, smoke)
    report(rows, gaps, latencies, picks, checks, len(truth.configs), smoke)


def forked(rng: random.Random) -> random.Random:
    """A generator that draws what ``rng`` will draw next, leaving ``rng`` where it is."""
    copy = random.Random()
    copy.setstate(rng.getstate())
    return copy


CURRICULUM = "meta-braider, curriculum pretraining"
MULTI = "multi-agent: quality-, latency- and cost-first proposers, arbiter"
MULTI_CHECKS: list[tuple[str, str]] = []  # the arbiter's outcomes on the same constraint draws
MISSES: list[tuple[str, tuple[str, ...]]] = []  # the single agent's violations: (kind, the limits missed)
# the single agent told the held-out task's truth (``bench.meta_constraints.told``): outcomes per knowledge
CEILING: dict[str, list[tuple[str, str]]] = {}
PROBED: list[tuple[str, str]] = []  # the agent measuring on the held-out task first (``meta.probe``)
PROBE_SPENT: list = []  # per held-out task: what its probe measured
DOUBT: list[float] = []  # per held-out type: the probe's doubt (``Calibration.transfer_doubt``)


def probe(agent: MetaBraider, truth: Truth):
    """A ``meta.probe.Probe`` over ``agent`` whose measurements are the records': each record is the trial
    (and decode timing) the probe would run, with the same seed."""
    from meta.probe import Probe

    return Probe(agent, lambda info, i: truth.score[info.name][i], lambda info, i: truth.ms[info.name][i])


def multi_agent(agent: MetaBraider, pool: list, obs: list, smoke: bool):
    """``agent`` as the quality-first proposer, with latency- and cost-first ones pretrained on the same
    records from other seeds (``meta.arbiter``)."""
    from meta.arbiter import Arbiter

    proposers = [agent]
    for seed in (1, 2):
        torch.manual_seed(seed)
        other = MetaBraider(pool, SPACE, dim=32)
        pretrain(other, obs, steps=30 if smoke else 300, seed=seed)
        proposers.append(other)
    return Arbiter(list(zip(proposers, ("quality", "latency", "cost"), strict=True)))


UNSEEN_MARGIN: list[
    float
] = []  # per held-out type: the agent's calibrated score margin for a type never seen
FEW_SHOT: list[tuple[list[float], list[float]]] = []
BEATS: list[
    tuple[bool, bool]
] = []  # per held-out task: the meta-braider's choice, the oracle beat the best member
K_SHOT = 10


def normalized(truth: Truth, task: str, config: int) -> float:
    """0 = random's expectation, 1 = the oracle."""
    s = truth.score[task]
    mean = statistics.mean(s.values())
    return (s[config] - mean) / ((max(s.values()) - mean) or 1.0)


def few_shot(agent: MetaBraider, records: list, pool: list, truth: Truth, held: str, smoke: bool):
    """For each variant of the held-out type: the normalized quality of the choice after adapting the pretrained
    ``agent`` on K_SHOT observations of the *other* variant, and after pretraining on all data but the target
    variant (full data: the other types and every observation of the other variant)."""
    import copy

    variants = [t for t, info in truth.tasks.items() if info.type == held]
    base = [r for r in records if truth.tasks[r.task.name].type != held]
    shots, full = [], []
    for target in variants if len(variants) > 1 else []:
        source = [r for r in records if truth.tasks[r.task.name].type == held and r.task.name != target]
        few = copy.deepcopy(agent)
        examples = random.Random(0).sample(observations_from_records(few, source), K_SHOT)
        adapt(few, examples, replay=observations_from_records(few, base), steps=20 if smoke else 60)
        torch.manual_seed(0)
        whole = MetaBraider(pool, SPACE, dim=32)
        pretrain(whole, observations_from_records(whole, base + source), steps=30 if smoke else 300)
        for learner, out in ((few, shots), (whole, full)):
            d = learner.decide_among(truth.tasks[target], truth.configs)
            out.append(normalized(truth, target, learner.candidates.index_of(d)))
    return shots, full


class LinUCB:
    """Disjoint LinUCB (one ridge regression per arm) on the task encoding as context."""

    def __init__(self, arms: list[int], dim: int, alpha: float = 1.0):
        self.arms, self.alpha = arms, alpha
        self.A = {a: torch.eye(dim, dtype=torch.float64) for a in arms}
        self.b = {a: torch.zeros(dim, dtype=torch.float64) for a in arms}

    def choose(self, x: torch.Tensor) -> int:
        x = x.double()

        def ucb(a: int) -> float:
            inv = torch.linalg.inv(self.A[a])
            return float((inv @ self.b[a]) @ x + self.alpha * torch.sqrt(x @ inv @ x))

        return max(self.arms, key=ucb)

    def update(self, a: int, x: torch.Tensor, reward: float) -> None:
        x = x.double()
        self.A[a] += torch.outer(x, x)
        self.b[a] += reward * x


def online(agent: MetaBraider, truth: Truth, vecs: dict[str, torch.Tensor], test: list[str], rounds: int):
    """The held-out tasks arrive in turn; each method picks a measured config, sees its true score, learns.
    Returns the cumulative regret per method."""
    bandit = LinUCB(truth.configs, len(next(iter(vecs.values()))))
    regret = {"meta-braider": [0.0], "LinUCB": [0.0]}
    for r in range(rounds * len(test)):
        t = test[r % len(test)]
        info, s = truth.tasks[t], truth.score[t]
        oracle = max(s.values())
        d = agent.decide_among(info, truth.configs)
        agent.learn_from_feedback(task_info=info, decision=d, score=s[agent.candidates.index_of(d)])
        a = bandit.choose(vecs[t])
        bandit.update(a, vecs[t], s[a])
        regret["meta-braider"].append(regret["meta-braider"][-1] + oracle - s[agent.candidates.index_of(d)])
        regret["LinUCB"].append(regret["LinUCB"][-1] + oracle - s[a])
    return regret


def plot_online(curves: list[dict[str, list[float]]], smoke: bool) -> None:
    total = {m: [sum(c[m][i] for c in curves) for i in range(len(curves[0][m]))] for m in curves[0]}
    print("online cumulative regret: " + ", ".join(f"{m} {v[-1]:.2f}" for m, v in total.items()))
    if smoke:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, v in total.items():
        ax.plot(v, label=m)
    ax.set(xlabel="round (summed over held-out types)", ylabel="cumulative regret vs oracle",
           title="Online phase on held-out task types")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parent.parent / "docs" / "meta_online.png", dpi=120)
    ONLINE.update({m: v[-1] for m, v in total.items()})


ONLINE: dict[str, float] = {}


def _span(xs: list[float]) -> str:
    return f"{min(xs):.1f}-{max(xs):.1f}" if xs else "n/a"


def report(rows, gaps, latencies, picks, checks, n_configs: int, smoke: bool) -> None:
    import math

    table = markdown_table(
        ["method", "regret / (oracle - best fixed)"],
        [[m, f"{v / gaps:.2f}" if gaps else "n/a"] for m, v in rows.items()],
    )
    counts = Counter(picks)
    entropy = -sum(c / len(picks) * math.log2(c / len(picks)) for c in counts.values())
    lat = statistics.median(latencies)
    seed_form = [o for k, o in checks if k != "min_score"]  # the seed's constraints: limits and a 0..1 target
    n, kinds = len(seed_form), Counter(seed_form)
    answered = kinds["met"] + kinds["violated"]
    raw_form = Counter(o for k, o in checks if k == "min_score")
    raw_n, raw_answered = sum(raw_form.values()), raw_form["met"] + raw_form["violated"]
    summary = (
        f"Constraints as the seed states them ({n} random compute budgets and latency limits, half of them with "
        f"a 0..1 accuracy_target, that some measured config meets, judged on measured latency and score): "
        f"decisions meeting them {kinds['met']}/{answered} = {kinds['met'] / max(answered, 1):.1%}; satisfiable "
        f"requests refused as infeasible {kinds['refused']}/{n} = {kinds['refused'] / max(n, 1):.1%}. "
        f"A raw score floor (`min_score`) on a type never measured, drawn alongside ({raw_n} requests): met "
        f"{raw_form['met']}/{raw_answered} = {raw_form['met'] / max(raw_answered, 1):.1%}, refused "
        f"{raw_form['refused']}/{raw_n} = {raw_form['refused'] / max(raw_n, 1):.1%}: a raw floor is an absolute "
        f"claim on a scale the agent has never measured for that type (its predictions for a held-out type "
        f"overshoot by up to the unseen score margin, {_span(UNSEEN_MARGIN)} nats here per held-out type), so it promises one only with that margin; a 0..1 target is relative, and an overshoot the "
        f"candidates share cancels. {miss_breakdown(MISSES)} {ceiling_summary(CEILING)}\n\n"
        f"Curriculum (the same pretraining steps, the training tasks easy to hard by measured difficulty, "
        f"`meta.learn.pretrain(curriculum=True)`): regret {rows[CURRICULUM] / gaps if gaps else float('nan'):.2f} "
        f"against {rows['meta-braider'] / gaps if gaps else float('nan'):.2f} in random order.\n\n"
        f"Decision latency (CPU, median over {len(latencies)} decisions among {n_configs} configs, each agent warmed "
        f"by one untimed decision): {lat:.2f} ms. "
        f"Selection entropy: {entropy:.2f} bits over {len(picks)} held-out tasks ({len(counts)} distinct configs "
        f"chosen; max {math.log2(min(len(picks), n_configs)):.2f})."
    )
    multi = Counter(o for k, o in MULTI_CHECKS if k != "min_score")
    multi_answered = multi["met"] + multi["violated"]
    summary += (
        f"\n\nMulti-agent (`meta.arbiter`: the meta-braider as the quality-first proposer, latency- and "
        f"cost-first proposers pretrained on the same records from other seeds; a candidate is allowed only if "
        f"every proposer predicts it meets the limits, and the arbiter takes the proposal with the best mean "
        f"predicted score): regret {rows[MULTI] / gaps if gaps else float('nan'):.2f} against "
        f"{rows['meta-braider'] / gaps if gaps else float('nan'):.2f} for the single agent; on the same "
        f"seed-form constraint draws, met {multi['met']}/{multi_answered} = "
        f"{multi['met'] / max(multi_answered, 1):.1%} of answered (single agent {kinds['met'] / max(answered, 1):.1%}), "
        f"refused {multi['refused']}/{sum(multi.values())} = {multi['refused'] / max(sum(multi.values()), 1):.1%} "
        f"of satisfiable (single agent {kinds['refused'] / max(n, 1):.1%})."
    )
    summary += probe_summary(kinds, answered, n, n_configs)
    shots = [q for k, _ in FEW_SHOT for q in k]
    full = [q for _, f in FEW_SHOT for q in f]
    ratio = (
        statistics.mean(shots) / statistics.mean(full) if full and statistics.mean(full) > 0 else float("nan")
    )
    if shots:
        summary += (
            f"\n\nFew-shot (each held-out variant; quality 0 = random, 1 = oracle): after adapting on {K_SHOT} "
            f"observations of the other variant of its type {statistics.mean(shots):.2f}, with full data "
            f"{statistics.mean(full):.2f}; ratio {ratio:.2f}."
        )
    if BEATS:
        summary += (
            f"\n\nAgainst the best member alone (scored as an untrained braid of itself): the meta-braider's "
            f"choice beats it on {sum(b for b, _ in BEATS)} of {len(BEATS)} held-out tasks; the best measured "
            f"config does on {sum(o for _, o in BEATS)}."
        )
    if ONLINE:
        summary += (
            "\n\nOnline phase (held-out tasks arrive in turn, each method learns from the true score): "
            + ", ".join(f"{m} cumulative regret {v:.2f}" for m, v in ONLINE.items())
            + " (`docs/meta_online.png`)."
        )
    print(table, summary, sep="\n\n")
    if smoke:
        return
    regret = rows["meta-braider"] / gaps if gaps else float("nan")
    met = [
        f"regret <= 0.10: {'met' if regret <= 0.10 else 'not met'} ({regret:.2f})",
        f"below kNN: {'met' if rows['meta-braider'] < rows['kNN'] else 'not met'}",
        f"constraints >= 99% of answered: {probe_verdict(kinds, answered, n, 'met')}",
        f"refused <= 10% of satisfiable: {probe_verdict(kinds, answered, n, 'refused')}",
        f"decision <= 5 ms: {'met' if lat <= 5 else 'not met'}",
        f"few-shot >= 80% of full data: {'met' if ratio >= 0.8 else 'not met'} ({ratio:.2f})",
    ]
    verdict = "**Targets: " + "; ".join(met) + ".**"
    write_section("meta", "Meta-braider on held-out task types (bench/meta.py)", "python bench/meta.py",
                  f"{table}\n\n{summary}\n\n{READING}\n\n{verdict}")  # fmt: skip


def probed() -> tuple[Counter, int, int]:
    """The probe's seed-form outcomes: counts, answered, all."""
    kinds = Counter(o for k, o in PROBED if k != "min_score")
    return kinds, kinds["met"] + kinds["violated"], sum(kinds.values())


def probe_verdict(alone: Counter, answered: int, n: int, what: str) -> str:
    """One target (``what``: "met", >= 99% of answered; "refused", <= 10% of satisfiable) with the probe,
    and the agent alone beside it."""

    def holds(kinds: Counter, answered: int, n: int) -> tuple[bool, float]:
        if what == "met":
            share = kinds["met"] / max(answered, 1)
            return share >= 0.99, share
        share = kinds["refused"] / max(n, 1)
        return share <= 0.10, share

    with_probe, p = holds(*probed())
    by_itself, a = holds(alone, answered, n)
    word = lambda ok: "met" if ok else "not met"  # noqa: E731
    return f"{word(with_probe)} measuring first ({p:.1%}; the agent alone {a:.1%}, {word(by_itself)})"


def probe_summary(alone: Counter, answered: int, n: int, n_configs: int) -> str:
    if not PROBED:
        return ""
    kinds, p_answered, p_n = probed()
    raw_form = Counter(o for k, o in PROBED if k == "min_score")
    raw_answered = raw_form["met"] + raw_form["violated"]
    trials = statistics.mean(s.trials for s in PROBE_SPENT)
    timings = statistics.mean(s.timings for s in PROBE_SPENT)
    return (
        f"\n\nMeasuring before answering (`meta.probe.Probe` over the same agent, on the same seed-form draws): "
        f"on a held-out type it times the decode ms of up to 16 candidates within the budget on the request's "
        f"task (an untrained braid decodes as fast as a trained one), and under a score limit trains "
        f"candidates in predicted order until no unmeasured one could change the answer, judged on its "
        f"prediction moved by the agent's mean error on the measured ones plus the doubt "
        f"({_span(DOUBT)} nats per held-out type: the most a candidate beat such a moved prediction when "
        f"pretraining left each of its types out), at most 8 trials a request; what it measured is kept per "
        f"task and each score promise is made only on a measured score. Met {kinds['met']}/{p_answered} = "
        f"{kinds['met'] / max(p_answered, 1):.1%} of answered (the agent alone {alone['met'] / max(answered, 1):.1%}), "
        f"refused {kinds['refused']}/{p_n} = {kinds['refused'] / max(p_n, 1):.1%} of satisfiable (alone "
        f"{alone['refused'] / max(n, 1):.1%}); raw score floors met {raw_form['met']}/{raw_answered}, refused "
        f"{raw_form['refused']}/{sum(raw_form.values())}. Its cost, per held-out task over its "
        f"{len(PROBED) / max(len(PROBE_SPENT), 1):.0f} requests: {trials:.1f} trials (each the same short "
        f"training run as a record: the records stand in for them here) and {timings:.1f} decode timings, of "
        f"the {n_configs} configs a sweep of the type would train and time."
    )


READING = (
    "Leave-one-task-type-out over the tiny zoo's four types (two task variants each): the agent pretrains on "
    "the other three types' records and picks among the measured configurations for the held-out type; "
    "0 is the oracle, 1 the best fixed config. 24 configs x 8 tasks, 20 training steps each, trained by two "
    "worker processes a config at a time; records cached in ~/.cache/llm-braid, each config's as it finishes. "
    "Decode ms is timed afterwards, one record at a time in one process (workers would time each other), per "
    "step after an untimed prefill (the median step, least of 3 rounds). Transfer rests on the model tokens' "
    "task affinity (text cosine, capability-domain match): in pretraining half the examples hide the task "
    "type and model domain one-hots (they read 'other'), and a type the agent never saw reads the same way, "
    "so the rule 'anchor the model that serves the task' carries over instead of memorised one-hots."
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", type=int, default=24)
    parser.add_argument("--records-only", action="store_true", help="measure (or reuse) the records and stop")
    parser.add_argument("--workers", type=int, default=2, help="processes measuring the records")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    from braid.zoo.build import build_zoo, load_cards
    from tune.records import ModelFeatures

    torch.manual_seed(0)
    zoo = build_zoo(tiny=True, progress=False)
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True)]
    specs = tasks(args.smoke_test)
    n = 3 if args.smoke_test else args.configs
    path = CACHE.with_suffix(".smoke.jsonl") if args.smoke_test else CACHE
    records = measure_all(zoo, pool, specs, n, path, args.workers)
    if args.records_only:
        return
    from tune.trainable import member_scores

    alone = {spec.name: max(member_scores(spec, zoo).values()) for spec in specs}
    evaluate(records, pool, smoke=args.smoke_test, alone=alone)


if __name__ == "__main__":
    main()
