"""The Tune trainable: build the sampled braid (local placement) inside the trial, train its fusion on the
task's train split reporting the task metric as it goes, checkpoint the fusion weights at every report.

Plain functions first (``build_braid``, ``measure_cost``, ``run_trial``), so they are tested without Ray;
``braid_trainable`` is the thin Tune wrapper.
"""

from __future__ import annotations

import functools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tune.records import Cost
from tune.space import BraidChoice
from tune.tasks import TaskSpec, evaluate_task

Report = Callable[[dict[str, Any], Path], None]  # (metrics, checkpoint dir) -> None


def build_braid(choice: BraidChoice, zoo: dict[str, str], shared_members: bool = False):
    """The sampled braid with its members loaded; ``shared_members``: from this process's cache instead of
    afresh (see ``loaded_member``). A searched architecture's per-point source layers and point
    architectures (``choice.layer_map``, ``choice.points``) carry over."""
    from braid.braided import BraidedLLM

    paths = [zoo[m] for m in choice.ordered_members()]
    models = [loaded_member(p) for p in paths] if shared_members and len(set(paths)) == len(paths) else None
    return BraidedLLM(config=choice.to_config(zoo), models=models)


@functools.lru_cache(maxsize=8)
def loaded_member(path: str):
    """A frozen member loaded once per process. Trials run one after another in one process (bench/meta.py,
    the meta-braider's episodes) share it, and with it what the character bridge memoised of every text it
    read: a cross-tokenizer member's distributions over a task's texts are computed once, not per trial."""
    from braid.model_wrapper import ModelWrapper

    return ModelWrapper(path).freeze()


def member_scores(spec: TaskSpec, zoo: dict[str, str]) -> dict[str, float]:
    """Each pool member alone on ``spec`` (its ``score``): an untrained braid of a member with itself is
    exactly that member (zero-started gates), and goes through the same evaluation as every trial."""
    from braid.braided import BraidedLLM

    scores = {}
    for name, path in zoo.items():
        alone = BraidedLLM(model_configs=[path, path], fusion_strategy="output_router", fusion_layers=[])
        scores[name] = evaluate_task(alone, spec)["score"]
    return scores


def measure_cost(braided, prompt: str, new_tokens: int = 8, rounds: int = 3) -> Cost:
    """Decode ms per token: timed single-token steps after the prompt's (untimed) prefill, greedy and not
    stopped by EOS, so neither the prompt's length nor an early EOS changes what a token costs; the median step
    of each round, the least over ``rounds`` (as timeit: a busy neighbour only ever adds time). Plus trained
    parameters and weight memory."""
    import torch

    from braid.generation import BraidSession

    ids = braided.anchor_model.encode(prompt[:200])["input_ids"].to(braided.anchor_model.device)
    medians = []
    for _ in range(rounds):
        steps, session = [], BraidSession(braided)
        logits = session.feed(ids)
        for _ in range(new_tokens):
            token = torch.tensor([[int(logits.argmax(-1))]], device=ids.device)
            start = time.perf_counter()
            logits = session.feed(token)
            steps.append(time.perf_counter() - start)
        medians.append(statistics.median(steps))
    weights = sum(p.numel() * p.element_size() for p in braided.parameters())
    return Cost(
        trained_params=braided.num_fusion_parameters(),
        decode_ms=min(medians) * 1000,
        memory_mb=weights / 2**20,
    )


def run_trial(
    config: dict[str, Any],
    task: TaskSpec,
    zoo: dict[str, str],
    report: Report,
    eval_every: int = 10,
    resume_from: Path | None = None,
    seed: int = 0,
    shared_members: bool = False,
    to_choice: Callable[[dict[str, Any]], BraidChoice] | None = None,
) -> None:
    """Train ``steps`` fusion steps, calling ``report`` every ``eval_every`` steps with metrics + checkpoint.

    ``task``: a ``TaskSpec`` or anything with its ``train_items``, ``cost_prompt`` and ``evaluate``
    (``tune.compound``). ``to_choice``: how ``config`` becomes a braid (default ``BraidChoice.from_trial``;
    the architecture search passes its own)."""
    import torch

    from braid.checkpoint import fusion_path
    from braid.config import probe_architecture
    from braid.spec import parse_members_key
    from braid.train import TrainConfig, fusion_steps, tokenize_dataset

    if to_choice is None:
        anchor, _ = parse_members_key(config["braid"])
        choice = BraidChoice.from_trial(config, probe_architecture(zoo[anchor]).num_layers)
    else:
        choice = to_choice(config)
    torch.manual_seed(seed)
    braided = build_braid(choice, zoo, shared_members)
    done = 0
    if resume_from is not None:
        braided.load_fusion_layers(fusion_path(resume_from))
        done = json.loads((resume_from / "state.json").read_text())["step"]
    cost = measure_cost(braided, task.cost_prompt())
    train_cfg = TrainConfig(learning_rate=choice.lr, batch_size=8, max_length=128, progress=False, seed=seed)
    examples = tokenize_dataset(braided, task.train_items(), train_cfg.max_length)
    fixed = {**cost.model_dump(), "choice": choice.model_dump_json()}
    for step, loss in fusion_steps(
        braided, examples, train_cfg, choice.steps - done, random.Random(seed + done)
    ):
        step += done + 1
        if step % eval_every and step != choice.steps:
            continue
        metrics = task.evaluate(braided, temperature=choice.temperature, seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            braided.save_fusion_layers(fusion_path(tmp))
            (Path(tmp) / "state.json").write_text(json.dumps({"step": step}))
            report({**metrics, "train_loss": loss, "steps_trained": step, **fixed}, Path(tmp))
        braided.train()


def braid_trainable(
    config: dict[str, Any], *, task: dict, zoo: dict[str, str], eval_every: int, seed: int
) -> None:
    """Ray Tune function trainable (use with ``tune.with_parameters``)."""
    import torch
    from ray import tune

    torch.set_num_threads(1)  # trials share the node's cores; one thread each avoids oversubscription

    def report(metrics: dict[str, Any], ckpt_dir: Path) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(ckpt_dir)))

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        run_trial(config, TaskSpec.model_validate(task), zoo, report, eval_every, None, seed)
        return
    with checkpoint.as_directory() as d:
        run_trial(config, TaskSpec.model_validate(task), zoo, report, eval_every, Path(d), seed)
