"""Held-out quality that compares across tokenizers: perplexity per character, not per token."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids, mask) -> logits (B, T, V)


@torch.no_grad()
def char_nll(
    logits_fn: LogitsFn, tokenizer: Any, texts: Sequence[str], batch_size: int = 16, max_length: int = 256
) -> tuple[float, int]:
    """Total next-token NLL (nats) over ``texts`` and the number of characters those tokens cover."""
    total, chars = 0.0, 0
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[i : i + batch_size]), return_tensors="pt", padding=True, truncation=True,
            max_length=max_length, return_offsets_mapping=True,
        )  # fmt: skip
        ids, mask = enc["input_ids"], enc["attention_mask"]
        logits = logits_fn(ids, mask).float()
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (B, T-1)
        total += float((nll * mask[:, 1:]).sum())
        ends = enc["offset_mapping"][..., 1].masked_fill(mask == 0, 0)  # (B, T)
        chars += int((ends.max(1).values - ends[:, 0]).sum())
    return total, chars


def char_perplexity(logits_fn: LogitsFn, tokenizer: Any, texts: Sequence[str], **kw: Any) -> float:
    total, chars = char_nll(logits_fn, tokenizer, texts, **kw)
    return math.exp(total / max(chars, 1))


def member_logits(model: Any) -> LogitsFn:
    """A ModelWrapper or a BraidedLLM as (ids, mask) -> logits."""
    return lambda ids, mask: model(ids, attention_mask=mask).logits
