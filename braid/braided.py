"""BraidedLLM: several frozen causal LMs exchanging hidden states at chosen layers and mixing their outputs.

The anchor member (``config.anchor``) reads the text and writes the output: its tokenizer encodes the
input and its LM head gives the logits. At each fusion point every member's hidden state is aligned to the
anchor's positions, mixed by the strategy module of that point, and an update is added back into each
member's residual stream, so fused states re-enter the networks. An output-level strategy then mixes the
members' own next-token distributions (in the anchor's vocabulary) into the anchor's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from braid import checkpoint
from braid.alignment import Alignment
from braid.config import BraidConfig, MemberConfig, is_saved_braid
from braid.fusion.stack import build_fusion
from braid.fusion.step import FusionHistory, FusionStep
from braid.generation import stream_text
from braid.lockstep import Lockstep
from braid.model_wrapper import Member, ModelWrapper
from braid.nested import BraidMember
from braid.readout import Readout
from braid.runner import PLACEMENTS, MemberRunner, check_placement, resolve
from braid.sampling import SamplingParams
from braid.views import batch_views


@dataclass
class BraidOutput:
    logits: torch.Tensor  # (B, T, V_anchor)
    loss: torch.Tensor | None = None  # in training mode, with the output strategy's auxiliary loss added
    hidden_states: list[tuple[torch.Tensor, ...]] | None = None  # per member, embeddings then every block


class BraidedLLM(nn.Module):
    """Braid of frozen HF causal LMs; only ``fusion_modules`` hold trainable parameters.

    A ``MemberRunner`` runs the members (``braid.runner``): ``placement="local"`` loads them here,
    ``placement="ray"`` puts each in a Ray actor of its own (``ray_placement``: a ``cluster.RayPlacement``)
    while the fusion runs here; ``runner=`` takes any runner, with ``models`` standing in for its members.
    ``close()`` (or ``with``) releases what the runner holds.
    """

    def __init__(
        self,
        model_configs: list[dict[str, Any] | MemberConfig | str] | None = None,
        fusion_strategy: str = "learned_weighted",
        fusion_layers: list[int] | None = None,
        anchor: int = 0,
        fusion_dim: int = 256,
        strategy_params: dict[str, Any] | None = None,
        layer_map: dict[int, list[int]] | None = None,
        alignment: str = "auto",
        points: list[dict[str, Any]] | None = None,
        *,
        config: BraidConfig | None = None,
        models: list[Member] | None = None,
        runner: MemberRunner | None = None,
        placement: str = "local",
        ray_placement: Any = None,
    ):
        super().__init__()
        check_placement(placement)
        if config is None:  # the seed's keyword form
            config = BraidConfig(
                model_configs=model_configs or [], fusion_strategy=fusion_strategy, fusion_layers=fusion_layers,
                anchor=anchor, fusion_dim=fusion_dim, strategy_params=strategy_params or {}, layer_map=layer_map,
                alignment=alignment, points=points,
            )  # fmt: skip
        self.config = config
        if runner is None:
            placed, runner = resolve(PLACEMENTS[placement])(config, ray_placement)
            models = models if models is not None else placed
        elif placement != "local":
            raise ValueError(f"give a runner or a placement, not both (placement={placement!r})")
        if models is None:
            models = [load_member(m) for m in config.model_configs]
        _check_models_match(config, models)
        self.models = nn.ModuleList(m.freeze() for m in models)
        self.lockstep = Lockstep(config.member_layers())
        # Members that read the text through their own tokenizer; the rest share the anchor's ids.
        anchor_tok = models[config.anchor].tokenizer
        own = {
            m
            for m, x in enumerate(models)
            if m != config.anchor and not same_tokenizer(x.tokenizer, anchor_tok)
        }
        general = config.alignment == "general"
        self.cross_members = {m for m in range(len(models)) if m != config.anchor} if general else own
        _check_inner_braids(models, self.cross_members)
        # Cross members exchange hidden states only with a hidden-state strategy; an output-level one
        # reads them through the bridge, which runs them itself.
        self.exchange_cross = self.cross_members if config.hidden_strategy else set()
        self.readout = None
        if config.output_strategy is not None:
            self.readout = Readout(list(models), config.anchor, own, config.output_params)
        readings = self.readout.readings if self.readout else []
        self.fusion_modules = build_fusion(config, [m.hidden_size for m in models], readings).to(
            self.anchor_model.device
        )
        self.use_offsets: bool | None = None  # None: the tokenizer's offsets where it has them
        # Members whose next-token logits a braided pass reads: the anchor's, and those an output-level
        # strategy mixes directly. The others skip their LM head (a full-vocabulary matmul per token).
        direct = set(self.readout.members) - set(self.readout.bridges) if self.readout else set()
        self.logit_members = {config.anchor} | direct
        # per hidden fusion point, the members taking part (None: all, at every point); read on every pass
        self.point_members = (
            [config.point(p)[3] for p in range(len(self.fusion_modules))] if config.points else None
        )
        self.runner = runner
        self.runner.attach(self)

    # -- structure ----------------------------------------------------------------------------------------
    @property
    def anchor_model(self) -> Member:
        return self.models[self.config.anchor]

    @property
    def tokenizer(self):
        return self.anchor_model.tokenizer

    def train(self, mode: bool = True) -> BraidedLLM:
        """Only the fusion modules change mode (and inner braids that train with this one): frozen members
        always run in eval mode (no dropout)."""
        self.training = mode
        self.fusion_modules.train(mode)
        for member in self.models:
            if member.named_trainable_parameters():
                member.train(mode)
        return self

    def named_fusion_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """What training updates: the fusion modules, and the fusion of inner braids that train with them."""
        yield from self.fusion_modules.named_parameters()
        for m, member in enumerate(self.models):
            for name, p in member.named_trainable_parameters():
                yield f"models.{m}.{name}", p

    def fusion_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_fusion_parameters()]

    def num_fusion_parameters(self) -> int:
        return sum(p.numel() for p in self.fusion_parameters())

    # -- compute ------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> BraidOutput:
        """input_ids: (B, T) right-padded, in the anchor's vocabulary. Returns anchor-vocabulary logits (B, T, V).

        Members with other tokenizers read the anchor's decoded text through their own tokenizers.
        """
        return self.runner.with_recovery(
            lambda: self._forward(input_ids, attention_mask, labels, output_hidden_states)
        )

    def _forward(self, input_ids, attention_mask, labels, output_hidden_states) -> BraidOutput:
        inputs, alignment, _ = batch_views(self, input_ids, attention_mask)
        outs = self.run_members(inputs, alignment, output_hidden_states=output_hidden_states)
        bridged = self.readout.text_dists(input_ids, attention_mask) if self.readout else {}
        logits, aux = self.output_logits(outs, alignment, bridged=bridged, labels=labels, input_ids=input_ids)
        loss = None if labels is None else causal_lm_loss(logits, labels)
        if loss is not None and aux is not None:
            loss = loss + aux
        hidden = [o.hidden_states for o in outs] if output_hidden_states else None
        return BraidOutput(logits=logits, loss=loss, hidden_states=hidden)

    def run_members(
        self,
        inputs: list[dict[str, torch.Tensor] | None],
        alignment: Alignment,
        caches: list[Any] | None = None,
        fusion_caches: list[dict[str, Any]] | None = None,
        output_hidden_states: bool = False,
        history: FusionHistory | None = None,
    ) -> list[Any]:
        """One braided pass: each member's HF forward on its own inputs, fused at every point.

        ``inputs[m] = None`` leaves member m out of this pass (it has no new tokens).
        """
        fuse = FusionStep(self.fusion_modules, alignment, fusion_caches, history, self.point_members)
        return self.runner.run(self, inputs, caches, fuse, output_hidden_states)

    def output_logits(
        self,
        outs: list[Any],
        alignment: Alignment,
        cache: dict[str, Any] | None = None,
        bridged: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
        labels: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Anchor-vocabulary logits (B, T, V) of a braided pass (the anchor's own, or the output-level
        strategy's mixture of every member's next-token distribution with them), and the output
        strategy's auxiliary loss (training mode with labels only). ``bridged``: the distributions of
        members read through the bridge, m -> (ids, probs) (B, R, T, K); ``input_ids`` (B, T): the anchor's
        tokens at these positions, which the output strategy judges its members by."""
        anchor = outs[self.config.anchor]
        output = self.fusion_modules.output
        if output is None:
            return anchor.logits, None
        dists = self.readout.dists(outs, alignment, bridged or {})
        return output(anchor.logits, anchor.final_hidden, dists, cache, labels, input_ids)

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = 200,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        stop: str | list[str] | None = None,
        stream: bool = False,
        seed: int | None = None,
    ) -> str | Iterator[str]:
        """Continue ``prompt``; greedy when temperature is 0. ``stream=True`` yields text pieces. Bad
        parameters raise here, before any work."""
        params = SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            stop=stop,
            seed=seed,
        )
        pieces = stream_text(self, prompt, params)
        return pieces if stream else "".join(pieces)

    def close(self) -> None:
        """Release what the runner holds (remote members, their connections); safe to call twice."""
        self.runner.close()
        for member in self.models:
            member.close()

    def __enter__(self) -> BraidedLLM:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- persistence (the format: braid.checkpoint) ------------------------------------------------------
    def fusion_signature(self) -> dict[str, Any]:
        """What fusion weights depend on; loading into a braid with another signature is an error."""
        return checkpoint.signature(self)

    def save_fusion_layers(self, path: str | Path) -> None:
        checkpoint.save_fusion(self, path)

    def load_fusion_layers(self, path: str | Path) -> None:
        checkpoint.load_fusion(self, path)

    def save_pretrained(self, directory: str | Path) -> None:
        """Config + fusion weights; member weights are referenced by name or path, never copied (an inner
        braid that trained with this one gets its fusion saved here too: ``checkpoint.inner_fusion_path``)."""
        checkpoint.save_braid(self, directory)
        for m, member in enumerate(self.models):
            if isinstance(member, BraidMember) and member.trainable:
                member.braid.save_fusion_layers(checkpoint.inner_fusion_path(directory, m))

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        models: list[Member] | None = None,
        placement: str = "local",
        ray_placement: Any = None,
    ) -> BraidedLLM:
        config = checkpoint.read_config(directory)
        braided = cls(config=config, models=models, placement=placement, ray_placement=ray_placement)
        braided.load_fusion_layers(checkpoint.fusion_path(directory))
        for m, member in enumerate(braided.models):
            if isinstance(member, BraidMember) and checkpoint.inner_fusion_path(directory, m).is_file():
                member.braid.load_fusion_layers(checkpoint.inner_fusion_path(directory, m))
        return braided


def load_member(m: MemberConfig, device: str | None = None, ray_placement: Any = None) -> Member:
    """A member as its config names it: a saved braid (``braid.nested``) or one HF model (on ``device``,
    else the config's). ``ray_placement``: a saved braid's own members go in Ray actors of their own."""
    if is_saved_braid(m.model_name):
        placement = "local" if ray_placement is None else "ray"
        inner = BraidedLLM.from_pretrained(m.model_name, placement=placement, ray_placement=ray_placement)
        return BraidMember(inner, m.model_name, m.trainable)
    return ModelWrapper(m.model_name, m.quantization, m.dtype, device or m.device)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy; label -100 is ignored. logits (B, T, V), labels (B, T)."""
    shift_logits = logits[:, :-1].float().reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].to(logits.device).reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=-100)


def _check_models_match(config: BraidConfig, models: list[Member]) -> None:
    if len(models) != len(config.model_configs):
        raise ValueError(f"{len(models)} models given for {len(config.model_configs)} model_configs")
    for i, (arch, model) in enumerate(zip(config.archs, models, strict=True)):
        if (arch.num_layers, arch.hidden_size) != (model.num_layers, model.hidden_size):
            raise ValueError(f"models[{i}] does not match model_configs[{i}] ({arch} vs the loaded model)")


def _check_inner_braids(models: list[Member], cross: set[int]) -> None:
    for m in sorted(cross):
        if isinstance(models[m], BraidMember):
            raise ValueError(
                f"member {m} ({models[m].model_name}) is a braid that reads with another tokenizer than the "
                "anchor: a braid member must share the anchor's tokenizer (its own members may use any)"
            )


def same_tokenizer(a: Any, b: Any) -> bool:
    """True when two tokenizers map every text to the same ids (the wrapper class may differ)."""
    if a is b:
        return True
    if a.all_special_ids != b.all_special_ids:
        return False
    backend_a, backend_b = getattr(a, "backend_tokenizer", None), getattr(b, "backend_tokenizer", None)
    if backend_a is not None and backend_b is not None:
        return _tokenizer_json(backend_a) == _tokenizer_json(backend_b)
    return type(a) is type(b) and a.get_vocab() == b.get_vocab()


def _tokenizer_json(backend: Any) -> dict:
    """A fast tokenizer's definition without its call-time state: a call with ``truncation`` or ``padding``
    leaves them set on the backend, which made the anchor's tokenizer differ from an identical member's
    after the first training batch (and the member was then read through the bridge)."""

    data = json.loads(backend.to_str())
    data.pop("truncation", None)
    data.pop("padding", None)
    return data
