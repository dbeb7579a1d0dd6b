"""Hierarchical braiding: a saved braid as one member of another braid.

The outer braid sees the inner braid as one member whose hidden states are the inner anchor's fused stream
and whose layer count is the inner anchor's: the outer fusion reads and writes the inner anchor's blocks,
after the inner fusion at the same block (the inner braid installs its hooks when it runs, in front of the
outer ones). Its next-token logits are the inner braid's output (its output-level strategy included), in
the inner anchor's vocabulary. An untrained outer braid adds nothing to its anchor's stream, so with an
inner braid as its anchor it computes exactly what that braid computes.

The inner braid's fusion is frozen unless its ``MemberConfig.trainable`` is set; then its fusion trains
with the outer braid's and is saved beside it (``braid.checkpoint``). Members of the inner braid may read
with their own tokenizers; the inner braid itself must share the outer anchor's tokenizer (the outer braid
feeds it the anchor's ids: re-tokenizing a braid would mean rolling back every cache inside it).

Generation keeps one ``BraidSession`` of the inner braid per sequence (``InnerCache``) and feeds it the new
tokens of each outer pass, so the inner braid runs incrementally as any member does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from braid.checkpoint import read_config
from braid.config import BraidConfig, is_saved_braid
from braid.generation import BraidSession
from braid.model_wrapper import LayerFn, Member

if TYPE_CHECKING:
    from braid.braided import BraidedLLM


@dataclass
class InnerOutput:
    logits: torch.Tensor | None  # (B, T, V_inner_anchor)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # the inner anchor's: embeddings, then every block
    past_key_values: Any = None


class InnerCache:
    """One sequence's state inside an inner braid: its session and the ids it has read. Quacks like an HF
    cache where the braid touches one (``get_seq_length``, ``crop``)."""

    def __init__(self):
        self.session: BraidSession | None = None
        self.ids: list[int] = []

    def get_seq_length(self) -> int:
        return len(self.ids)

    def crop(self, length: int) -> None:
        """Keep the first ``length`` ids (a negative ``length`` removes that many, as transformers 5 does);
        the session is rebuilt from them on the next read."""
        keep = length if length >= 0 else len(self.ids) + length
        if keep < len(self.ids):
            self.ids, self.session = self.ids[:keep], None


class BraidMember(Member):
    """A loaded ``BraidedLLM`` standing in for one member of an outer braid."""

    def __init__(self, braid: BraidedLLM, model_name: str | Path, trainable: bool = False):
        super().__init__(str(model_name), braid.tokenizer)
        self.braid, self.trainable = braid, trainable  # a submodule: .to() and .parameters() reach it
        self.hooked = 0  # outer fusion hooks installed on the inner anchor right now

    # -- what the outer braid reads -----------------------------------------------------------------------
    @property
    def config(self) -> Any:
        return self.braid.anchor_model.config

    @property
    def device(self) -> torch.device:
        return self.braid.anchor_model.device

    @property
    def num_parameters(self) -> int:
        members = sum(m.num_parameters for m in self.braid.models)
        return members + self.braid.num_fusion_parameters()

    @property
    def no_logits(self) -> dict[str, Any]:
        return {}  # the inner braid's output is its point; there is no head to skip

    @property
    def reads_stepwise(self) -> bool:
        """After its first pass, the inner braid reads one token per pass (its members re-tokenize)."""
        return bool(self.braid.exchange_cross or self.braid.readout and self.braid.readout.bridges)

    def features(self) -> dict[str, Any]:
        anchor = self.braid.anchor_model.features()
        return anchor | {
            "name": Path(self.model_name.rstrip("/")).name,
            "model_name": self.model_name,
            "model_type": "braid",
            "size": self.num_parameters,
            "members": [m.features()["name"] for m in self.braid.models],
        }

    def named_trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return list(self.braid.named_fusion_parameters()) if self.trainable else []

    def freeze(self) -> BraidMember:
        for p in self.braid.fusion_parameters():
            p.requires_grad_(self.trainable)
        self.braid.train(False)
        return self.eval()

    def train(self, mode: bool = True) -> BraidMember:
        self.training = mode
        self.braid.train(mode and self.trainable)
        return self

    # -- compute ------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: InnerCache | None = None,
        use_cache: bool = False,
        output_hidden_states: bool = True,
        **kwargs: Any,
    ) -> InnerOutput:
        """The inner braid on ``input_ids`` (B, T); with a cache, the next T tokens of its sequence (B = 1)."""
        if past_key_values is not None:
            return InnerOutput(self._read(input_ids, past_key_values), past_key_values=past_key_values)
        out = self.braid(input_ids, attention_mask, output_hidden_states=output_hidden_states)
        hidden = out.hidden_states[self.braid.config.anchor] if output_hidden_states else None
        return InnerOutput(out.logits, hidden)

    def _read(self, input_ids: torch.Tensor, cache: InnerCache) -> torch.Tensor:
        """(1, T, V) logits of T new tokens through the cached session, one inner pass per outer pass."""
        if input_ids.shape[0] != 1:
            raise ValueError(
                f"an inner braid generates one sequence at a time (got a batch of {input_ids.shape[0]})"
            )
        new = input_ids[0].tolist()
        reread = cache.session is None and cache.ids
        if reread and self.hooked:
            raise RuntimeError("an inner braid was rolled back while the outer fusion reads it")
        if cache.session is None:
            cache.session = BraidSession(self.braid)
        ids = cache.ids + new if reread else new
        if cache.session.length and len(ids) > 1 and self.reads_stepwise and self.hooked:
            raise RuntimeError("an inner braid whose members re-tokenize reads one token per outer pass")
        cache.session.pass_logits = []
        cache.session.feed(torch.tensor([ids], device=self.device))
        cache.ids += new
        return torch.cat(cache.session.pass_logits, 1)[:, -len(new) :]  # (1, T, V)

    def new_cache(self) -> InnerCache:
        return InnerCache()

    @contextlib.contextmanager
    def inject(self, fns: dict[int, LayerFn]) -> Iterator[None]:
        """The outer braid's edits on the inner anchor's blocks (after the inner fusion at the same block)."""
        self.hooked += 1
        try:
            with self._anchor_side().inject(fns):
                yield
        finally:
            self.hooked -= 1

    @contextlib.contextmanager
    def capture_final_hidden(self) -> Iterator[Any]:
        with self._anchor_side().capture_final_hidden() as box:
            yield box

    def _anchor_side(self) -> Any:
        """What reaches the inner anchor's blocks: the anchor itself in-process, or, when the inner braid's
        members are actors of their own (ray placement), its runner, which relays over the anchor's channel."""
        runner = self.braid.runner
        return runner if hasattr(runner, "inject") else self.braid.anchor_model

    def close(self) -> None:
        self.braid.close()


@dataclass(frozen=True)
class TreeRow:
    depth: int  # 0: a member of the braid itself, 1: of an inner braid, ...
    index: int  # the member's index in its own braid
    name: str
    anchor: bool
    what: str  # the model type, or "braid: <strategy>, frozen|trainable"
    num_layers: int
    hidden_size: int
    fusion_blocks: list[int]  # its blocks at the fusion points of the braid it belongs to


def config_tree(config: BraidConfig, depth: int = 0) -> list[TreeRow]:
    """A braid's members as rows, each inner braid's members under it; reads configs only (no weights)."""
    rows = []
    for m, (member, arch, blocks) in enumerate(
        zip(config.model_configs, config.archs, config.member_layers(), strict=True)
    ):
        inner = read_config(member.model_name) if is_saved_braid(member.model_name) else None
        what = arch.model_type
        if inner is not None:
            what = f"braid: {inner.fusion_strategy}, {'trainable' if member.trainable else 'frozen'}"
        row = TreeRow(
            depth, m, member.model_name, m == config.anchor, what, arch.num_layers, arch.hidden_size, blocks
        )
        rows.append(row)
        rows += config_tree(inner, depth + 1) if inner is not None else []
    return rows
