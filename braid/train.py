"""Fusion training with frozen bases: only ``braided.fusion_modules`` learn.

Gates start at zero (identity at start) and therefore also start with small effective updates; they get
their own, larger learning rate (``gate_learning_rate``, default 10x) so identity at start does not mean slow
learning (DESIGN.md decision 1). A held-out split is evaluated along the way, not only the train loss.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from braid.braided import BraidedLLM
from braid.tokenview import pad_id


class TrainConfig(BaseModel):
    """Settings of ``train_fusion`` (the seed's fusion_config.yaml keys, plus what real runs need)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    learning_rate: float = Field(default=1e-3, gt=0)
    gate_learning_rate: float | None = Field(default=None, gt=0, description="default: 10 x learning_rate")
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=8, ge=1)
    max_length: int = Field(default=128, ge=2)
    num_epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    warmup_steps: int = Field(default=0, ge=0)
    grad_clip: float | None = Field(default=1.0, gt=0)
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)
    eval_every: int = Field(default=50, ge=1)
    seed: int = 0
    progress: bool = True


# The training recipe per strategy level, from the measured curves in BENCHMARKS.md ("Training curves",
# bench/curve.py): steps and learning rate where held-out mixture perplexity stopped improving.
RECIPES: dict[str, dict[str, Any]] = {
    "output": {"learning_rate": 3e-3, "max_steps": 400},
    "hidden": {"learning_rate": 3e-3, "max_steps": 800},
}


def recipe(strategy: str, **overrides: Any) -> TrainConfig:
    """The measured ``TrainConfig`` for ``strategy`` (a hidden-state part sets it when there is one: its
    modules need the slower schedule), batch 8, texts cut at 128 anchor tokens; ``overrides`` win."""
    from braid.fusion import split_strategy

    level = "hidden" if split_strategy(strategy)[0] else "output"
    return TrainConfig(**{"batch_size": 8, "max_length": 128, **RECIPES[level], **overrides})


@dataclass
class TrainHistory:
    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)

    @property
    def final_eval_loss(self) -> float | None:
        return self.eval_loss[-1] if self.eval_loss else None


Example = tuple[list[int], list[int]]  # input ids, labels


def tokenize_dataset(braided: BraidedLLM, dataset: Sequence[Any], max_length: int) -> list[Example]:
    """Texts (anchor tokenizer) or dicts with ``input_ids`` and optional ``labels`` -> examples."""
    examples = []
    for i, item in enumerate(dataset):
        if isinstance(item, str):
            ids = braided.tokenizer(item, truncation=True, max_length=max_length)["input_ids"]
            labels = list(ids)
        elif isinstance(item, dict) and "input_ids" in item:
            ids = list(item["input_ids"])[:max_length]
            labels = list(item.get("labels", ids))[:max_length]
        else:
            raise TypeError(
                f"dataset[{i}] must be a str or a dict with 'input_ids', not {type(item).__name__}"
            )
        if len(ids) >= 2:
            examples.append((list(ids), labels))
    if not examples:
        raise ValueError("the dataset has no example of at least 2 tokens")
    return examples


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example; padded labels are -100."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)], labels[row, : len(y)], mask[row, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def make_optimizer(braided: BraidedLLM, config: TrainConfig) -> torch.optim.Optimizer:
    gates, rest = [], []
    for name, p in braided.named_fusion_parameters():
        (gates if name.endswith("gate") else rest).append(p)
    gate_lr = config.gate_learning_rate or 10 * config.learning_rate
    return torch.optim.AdamW(
        [
            {"params": rest, "lr": config.learning_rate, "weight_decay": config.weight_decay},
            {"params": gates, "lr": gate_lr, "weight_decay": 0.0},
        ]
    )


@torch.no_grad()
def evaluate(braided: BraidedLLM, examples: Sequence[Example], batch_size: int, pad_id: int) -> float:
    """Mean next-token loss over ``examples``, weighted by target tokens."""
    was_training = braided.training
    braided.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = collate(examples[i : i + batch_size], pad_id)
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += float(braided(**batch).loss) * n
        count += n
    braided.train(was_training)
    return total / max(count, 1)


def train_fusion(
    braided: BraidedLLM,
    dataset: Sequence[Any],
    config: TrainConfig | None = None,
    eval_dataset: Sequence[Any] | None = None,
) -> TrainHistory:
    """Train the fusion modules on ``dataset``; bases stay frozen. Returns the loss history."""
    config = config or TrainConfig()
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    examples = tokenize_dataset(braided, dataset, config.max_length)
    if eval_dataset is not None:
        held_out = tokenize_dataset(braided, eval_dataset, config.max_length)
    else:
        rng.shuffle(examples)
        n_eval = int(len(examples) * config.eval_fraction)
        held_out, examples = examples[:n_eval], examples[n_eval:]
    pad = pad_id(braided.tokenizer)
    total = config.max_steps or -(-len(examples) // config.batch_size) * config.num_epochs
    history = TrainHistory()
    bar = tqdm(total=total, desc="train fusion", disable=not config.progress)
    for step, loss in fusion_steps(braided, examples, config, total, rng):
        history.train_loss.append(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        if held_out and ((step + 1) % config.eval_every == 0 or step + 1 == total):
            history.eval_steps.append(step + 1)
            history.eval_loss.append(evaluate(braided, held_out, config.batch_size, pad))
    bar.close()
    braided.eval()
    return history


def fusion_steps(
    braided: BraidedLLM,
    examples: list[Example],
    config: TrainConfig,
    total: int,
    rng: random.Random,
    loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
) -> Iterator[tuple[int, float]]:
    """Optimizer steps over tokenized ``examples`` (cycling epochs), yielding (step, loss) after each.

    A generator so callers (train_fusion, the Tune trainable, Ray Train workers) can evaluate or report
    between steps while one optimizer keeps its state. ``loss_fn(batch)`` replaces ``braided(**batch).loss``
    (Ray Train passes its DDP-wrapped module, so the backward pass all-reduces the fusion gradients)."""
    loss_fn = loss_fn or (lambda batch: braided(**batch).loss)
    pad = pad_id(braided.tokenizer)
    steps_per_epoch = -(-len(examples) // config.batch_size)
    opt = make_optimizer(braided, config)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (config.warmup_steps + 1)))
    braided.train()
    for step in range(total):
        if step % steps_per_epoch == 0:
            rng.shuffle(examples)
        start = (step % steps_per_epoch) * config.batch_size
        loss = loss_fn(collate(examples[start : start + config.batch_size], pad))
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(braided.fusion_parameters(), config.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        yield step, loss.item()
    braided.eval()
