"""Incremental generation for a braid: every member keeps its KV cache, the fusion keeps its own.

``BraidSession`` holds the state of one sequence and feeds it new tokens; ``stream_text`` turns the anchor's
sampled tokens into text pieces, holding back what might still become a stop string or a split character.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from braid.alignment import Alignment, last_at_or_before
from braid.fusion.step import FusionHistory
from braid.model_wrapper import Member
from braid.runner import BraidUnavailable, MemberLost
from braid.sampling import SamplingParams
from braid.tokenview import common_prefix, extend_visible, member_tokenize, visible_ends
from braid.views import batch_views

if TYPE_CHECKING:
    from braid.braided import BraidedLLM


PREFILL_BLOCK = 256  # prompt tokens per braided pass (see BraidSession.feed)


class BraidSession:
    """One sequence being generated: member KV caches plus per-point fusion caches.

    Members sharing the anchor's tokenizer are fed the anchor's tokens. Every other member re-tokenizes the
    visible text whenever it grows, crops its KV cache to the ids it had in common, and feeds the rest; it
    never sees text the anchor has not produced, and never re-runs its whole prefix.
    """

    def __init__(self, braided: BraidedLLM):
        self.braided = braided
        self.caches = [m.new_cache() for m in braided.models]
        self.fusion_caches: list[dict[str, Any]] = [{} for _ in braided.config.fusion_layers]
        self.output_cache: dict[str, Any] = {}
        self.cross = sorted(braided.exchange_cross)  # members that re-read the text in the pass
        self.absent = braided.cross_members - set(self.cross)  # read through the bridge only
        readout = braided.readout
        self.bridges = {m: b.session() for m, b in readout.bridges.items()} if readout else {}
        self.history = FusionHistory(set(self.cross)) if self.cross else None
        self.anchor_ids: list[int] = []
        self.visible = ""
        self.anchor_ends: list[int] = []
        self.member_tokens: dict[int, list[tuple[int, int]]] = {m: [] for m in self.cross}  # (id, end)
        self.length = 0
        # after the prompt, one token per pass when a member reads that way (an inner braid whose members
        # re-tokenize: ``braid.nested``)
        self.stepwise = any(m.reads_stepwise for m in braided.models)
        self.pass_logits: list[torch.Tensor] | None = None  # set to a list to collect every pass's logits

    @torch.no_grad()
    def feed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Append anchor tokens (1, T); returns the anchor's next-token logits (1, V).

        A long prompt goes in blocks of ``PREFILL_BLOCK`` tokens: attention-shaped fusion scores every new
        position against every earlier one, so one pass over T tokens holds T x T scores per point and
        head; blocks keep that at PREFILL_BLOCK x T, and the caches make the result the same."""
        if input_ids.shape[1] > PREFILL_BLOCK:
            for start in range(0, input_ids.shape[1], PREFILL_BLOCK):
                logits = self.feed(input_ids[:, start : start + PREFILL_BLOCK])
            return logits
        if not self.cross and not self.bridges and self.length and self.stepwise:
            for token in input_ids[0].tolist():
                logits = self._run(self._shared(input_ids.new_tensor([[token]])), None)
        elif not self.cross and not self.bridges:
            logits = self._run(self._shared(input_ids), None)
        elif self.length == 0:
            logits = self._prefill(input_ids)
        else:
            for token in input_ids[0].tolist():
                logits = self._step(token)
        self.length += input_ids.shape[1]
        return logits

    def _shared(self, ids: torch.Tensor) -> list[dict[str, torch.Tensor] | None]:
        """The anchor's ids for every member that reads them (``ids``: (1, T))."""
        return [None if m in self.absent else {"input_ids": ids} for m in range(len(self.braided.models))]

    def _run(self, inputs: list, alignment: Alignment | None, ends: list[int] | None = None) -> torch.Tensor:
        """One braided pass over new anchor positions whose visible text ends at ``ends`` (needed by
        bridged members); the next-token logits after the last one."""
        alignment = alignment or Alignment.identity(None, len(self.braided.models))
        outs = self.braided.run_members(
            inputs, alignment, caches=self.caches, fusion_caches=self.fusion_caches, history=self.history
        )
        bridged = {}
        for m, session in self.bridges.items():  # (R, T, K) -> (1, R, T, K)
            bridged[m] = tuple(x.unsqueeze(0) for x in session.steps([self.visible[:e] for e in ends]))
        ids = inputs[self.braided.config.anchor]["input_ids"]
        logits, _ = self.braided.output_logits(outs, alignment, self.output_cache, bridged, input_ids=ids)
        if self.pass_logits is not None:
            self.pass_logits.append(logits)  # (1, T, V)
        return logits[:, -1].float()

    def _prefill(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The prompt in one pass, as a forward would see it; member caches keep only their final tokens."""
        inputs, alignment, trees = batch_views(self.braided, input_ids, None)
        self.anchor_ids = input_ids[0].tolist()
        self.visible, self.anchor_ends = visible_ends(self.braided.tokenizer, self.anchor_ids)
        logits = self._run(inputs, alignment, self.anchor_ends)
        for m in self.cross:
            tree = trees[m][0]
            Member.crop_cache(self.caches[m], tree.num_final)
            self.history.crop(m, tree.num_final)
            self.member_tokens[m] = list(zip(tree.ids, tree.ends, strict=True))[: tree.num_final]
        return logits

    def _step(self, token: int) -> torch.Tensor:
        """One anchor token: members re-read the visible text if it grew."""
        braided, step = self.braided, len(self.anchor_ids)
        self.anchor_ids.append(token)
        visible = extend_visible(
            self.visible,
            braided.tokenizer.decode(
                self.anchor_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            ),
        )
        grew, self.visible = len(visible) > len(self.visible), visible
        self.anchor_ends.append(len(visible))
        inputs = self._shared(torch.tensor([[token]], device=braided.anchor_model.device))
        alignment = Alignment.identity(None, len(braided.models))
        for m in self.cross:
            inputs[m] = self._member_growth(m, step, alignment) if grew else None
            last = len(self.member_tokens[m]) - 1
            alignment.to_anchor[m] = torch.tensor([[max(last, 0)]])
            alignment.to_anchor_valid[m] = torch.tensor([[last >= 0]])
        return self._run(inputs, alignment, [len(visible)])

    def _member_growth(self, m: int, step: int, alignment: Alignment) -> dict[str, torch.Tensor] | None:
        member = self.braided.models[m]
        ids, ends = member_tokenize(member.tokenizer, [self.visible], self.braided.use_offsets)[0]
        tokens = list(zip(ids, ends, strict=True))  # a token is its id and its span: [UNK] can grow
        keep = len(common_prefix(self.member_tokens[m], tokens))
        Member.crop_cache(self.caches[m], keep)
        self.history.crop(m, keep)
        self.member_tokens[m] = tokens
        if keep == len(ids):
            return None
        receive = last_at_or_before(torch.tensor([ends[keep:]]), torch.tensor(self.anchor_ends))
        receive = receive.clamp(max=step)  # only anchor positions that exist now
        alignment.from_anchor[m] = receive.clamp(min=0)
        alignment.from_anchor_valid[m] = receive >= 0
        return {"input_ids": torch.tensor([ids[keep:]], device=member.device)}


MIN_TEMPERATURE = 1e-4  # sampling this cold is greedy decoding


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token id from (1, V) logits: argmax at temperature 0, else temperature / top-k / top-p sampling."""
    if params.temperature < MIN_TEMPERATURE:  # below it the division overflows (or the float32 divisor is 0)
        return int(logits.argmax(-1))
    logits = logits.float() / params.temperature
    if params.top_k is not None:
        kth = torch.topk(logits, min(params.top_k, logits.shape[-1])).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1)
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > params.top_p  # keep the smallest set reaching top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def generate_tokens(braided: BraidedLLM, input_ids: torch.Tensor, params: SamplingParams) -> Iterator[int]:
    """Yield sampled anchor token ids after the prompt (1, T); stops at the anchor's EOS.

    When the runner loses a member midway, it recovers and a new session replays the prompt and the tokens
    produced so far (no re-sampling), so greedy output is unchanged."""
    generator = None if params.seed is None else torch.Generator().manual_seed(params.seed)
    produced: list[int] = []
    runner = braided.runner
    for failures in range(1, runner.attempts + 1):
        try:
            yield from continue_tokens(braided, input_ids, params, generator, produced)
            return
        except MemberLost as e:
            if failures == runner.attempts:
                raise BraidUnavailable(f"gave up after {failures} member failures: {e}") from e
            runner.recover(e)


def continue_tokens(
    braided: BraidedLLM,
    input_ids: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None,
    produced: list[int],
) -> Iterator[int]:
    """A fresh session fed the prompt and the tokens already ``produced`` (replayed, not re-sampled), then
    sampling until EOS or ``max_new_tokens`` in all; each new token is appended to ``produced`` and yielded.
    A caller that loses its session midway (a lost remote member) calls again with the same list."""
    eos, device = braided.tokenizer.eos_token_id, braided.anchor_model.device
    session = BraidSession(braided)
    logits = session.feed(input_ids.to(device))
    for token in produced:
        logits = session.feed(torch.tensor([[token]], device=device))
    while len(produced) < params.max_new_tokens:
        token = sample_next(logits, params, generator)
        if token == eos:
            return
        produced.append(token)
        yield token
        if len(produced) < params.max_new_tokens:
            logits = session.feed(torch.tensor([[token]], device=device))


def max_positions(model: Any) -> int | None:
    """How many positions a member's config allows (None: no limit it states)."""
    cfg = model.config
    return getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)


def check_prompt(models: Iterable[Any], prompt: str, max_new_tokens: int) -> None:
    """ValueError before any work when ``prompt`` is empty or a member cannot hold it and ``max_new_tokens``
    more within its position limit (members tokenize the same text into different lengths). The library
    refuses such a prompt rather than cutting it; the HTTP server keeps its last part (``fit_prompt``)."""
    if not prompt:
        raise ValueError("the prompt is empty: a braid continues text, give it at least one character")
    for i, member in enumerate(models):
        limit = max_positions(member)
        if limit is None:
            continue
        n = len(member.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if n + max_new_tokens > limit:
            raise ValueError(
                f"the prompt is {n} tokens for member {i} ({member.model_name}) and max_new_tokens is {max_new_tokens}: "
                f"more than its {limit} positions; shorten the prompt or lower max_new_tokens"
            )


def stream_text(braided: BraidedLLM, prompt: str, params: SamplingParams) -> Iterator[str]:
    """Text pieces of the continuation of ``prompt``, cut before the first stop string."""
    check_prompt(braided.models, prompt, params.max_new_tokens)
    enc = braided.anchor_model.encode(prompt)
    return text_pieces(generate_tokens(braided, enc["input_ids"], params), braided.tokenizer, params.stop)


def text_pieces(tokens: Iterable[int], tokenizer: Any, stop: list[str]) -> Iterator[str]:
    """Decode a token stream into text pieces, holding back what may still change or become a stop string."""
    ids: list[int] = []
    emitted = 0
    text = ""
    for token in tokens:
        ids.append(token)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        cut = _first_stop(text, stop)
        if cut is not None:
            if cut > emitted:
                yield text[emitted:cut]
            return
        safe = len(text) - _holdback(text, stop)
        if safe > emitted:
            yield text[emitted:safe]
            emitted = safe
    if len(text) > emitted:
        yield text[emitted:]


def _first_stop(text: str, stops: list[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def _holdback(text: str, stops: list[str]) -> int:
    """How many trailing characters to hold: a split UTF-8 character, or a possible stop-string prefix."""
    if text.endswith("\ufffd"):
        return 1
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                hold = max(hold, n)
                break
    return hold
