"""A plain next-token pretraining loop for the small models trained here."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm


def pretrain_lm(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 16,
    max_length: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Train all of ``model`` on ``texts`` (random batches, right padding). Returns the loss per step."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * (1 - s / (steps + 1)))
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc="pretrain", disable=not progress):
        batch = tokenizer(
            [rng.choice(texts) for _ in range(batch_size)],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
        )
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses
