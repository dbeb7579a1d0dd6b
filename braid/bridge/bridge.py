"""The character-level bridge: a member with its own tokenizer as a distribution over the anchor's next token.

At an anchor position the visible text V is fixed; the question for the member is which characters come
next, and from them which token the anchor writes next. The member cannot simply read V: its tokenization
of a prefix is not its tokenization of the whole text (a tail like "p" or "▁" + "7" that the full text
would write as "pcf" or "▁70"), so feeding it V's tokens asks about strings it was never trained on.

Instead the bridge sums over the member's *coverings* of the current word W (the text since the member's
last pre-token boundary; everything before it is tokenized for good): token paths whose tokens spell a
prefix of W, with one last token that reaches V's end or runs past it. A token running past V's end writes
some characters u beyond it; a path ending exactly at V's end continues with the member's next token (one
more level). Continuations that could still grow into a longer anchor token are expanded one more member
token (the ``expand`` most likely ones). Each continuation u is mapped to the anchor's canonical next token
(``AnchorMap``), and the masses are summed and normalised: the probability, under the member, of each token
the anchor can write next. Paths within W are kept to the ``beam`` most likely per character position.

WordPiece members drop whitespace between words, so their new-word tokens are read twice: ``readings``
(" " before a new word, or nothing) become separate components, and the output strategy learns per
position which one fits (after "=" in facts, no space; after ".", a space).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from braid.bridge.anchor_map import AnchorMap
from braid.bridge.surface import TokenSurface, word_start
from braid.fusion.output import BridgeSettings
from braid.tokenview import member_tokenize, prefix_specials, visible_ends


class BridgeParams(BridgeSettings):
    top_k: int = Field(default=32, ge=1, description="anchor tokens kept per position and reading")


@dataclass
class Hypothesis:
    path: tuple[int, ...]  # member tokens after the stable prefix
    mass: float  # member probability of the path, relative to the current word's start
    text: str  # characters written after the visible text
    final: bool = False  # the mass a look-ahead left where it was: not looked at again


class PrefixScorer:
    """The member's next-token log-probabilities after (stable prefix + path) for paths inside the current
    word. The prefix sits in a KV cache; every path node computed since the prefix last changed stays in the
    cache too (a token tree after the prefix), so a new path costs one token per node not yet computed, and
    all of a call's new nodes go through one forward, each attending to the prefix, its ancestors and
    itself."""

    def __init__(self, member: Any):
        self.member = member
        self.prefix: list[int] = []
        self.cache = member.new_cache()
        self.nodes: dict[tuple[int, ...], int] = {}  # path -> its last token's index after the prefix
        self.rows: dict[tuple[int, ...], torch.Tensor] = {}  # path -> log-probabilities after it

    def set_prefix(self, ids: list[int]) -> None:
        if ids == self.prefix and () in self.rows:
            return
        keep = 0
        while keep < min(len(ids), len(self.prefix)) and ids[keep] == self.prefix[keep]:
            keep += 1
        keep = min(keep, len(ids) - 1) if ids else 0  # recompute the last token: its distribution is needed
        type(self.member).crop_cache(self.cache, keep)
        self.nodes.clear()
        self.rows.clear()
        self.prefix = list(ids)
        if ids:
            logits = self._forward(ids[keep:], torch.arange(keep, len(ids)), None)
            self.rows[()] = torch.log_softmax(logits[-1].float(), -1).cpu()
        else:  # no BOS to condition on: nothing is known yet
            self.rows[()] = torch.full((self.member.vocab_size,), -math.log(self.member.vocab_size))

    def logprobs(self, paths: list[tuple[int, ...]]) -> list[torch.Tensor]:
        new = sorted({p[:k] for p in paths for k in range(1, len(p) + 1)} - set(self.nodes), key=len)
        if new:
            base = len(self.nodes)
            for i, path in enumerate(new):
                self.nodes[path] = base + i
            ancestors = [[self.nodes[path[:k]] for k in range(1, len(path) + 1)] for path in new]
            logits = self._forward(
                [path[-1] for path in new],
                torch.tensor([len(self.prefix) + len(path) - 1 for path in new]),
                ancestors,
            )
            for path, row in zip(new, torch.log_softmax(logits.float(), -1).cpu(), strict=True):
                self.rows[path] = row
        return [self.rows[p] for p in paths]

    @torch.no_grad()
    def _forward(self, ids: list[int], positions: torch.Tensor, ancestors: list[list[int]] | None):
        """Append ``ids`` to the cache; tree nodes see the prefix and their ``ancestors`` (themselves
        included), a plain run sees everything before it."""
        n, cached = len(ids), self.cache.get_seq_length()
        mask = None
        if ancestors is not None:
            allow = torch.zeros(n, cached + n, dtype=torch.bool)
            allow[:, : len(self.prefix)] = True
            rows = torch.tensor([i for i, a in enumerate(ancestors) for _ in a])
            cols = torch.tensor([len(self.prefix) + j for a in ancestors for j in a])
            allow[rows, cols] = True
            mask = allow.view(1, 1, n, cached + n).to(self.member.device)
        return self.member.forward(
            input_ids=torch.tensor([ids], device=self.member.device), attention_mask=mask,
            position_ids=positions.view(1, -1).to(self.member.device), past_key_values=self.cache,
            use_cache=True, output_hidden_states=False,
        ).logits[0]  # fmt: skip


class CharBridge:
    """One cross-tokenizer member seen through the anchor's tokenizer. ``text_dists`` serves training and
    evaluation (memoised per text: the member is frozen), ``session`` serves generation."""

    def __init__(self, member: Any, anchor_tokenizer: Any, params: BridgeParams | None = None):
        self.member, self.anchor_tokenizer = member, anchor_tokenizer
        self.params = params or BridgeParams()
        self.surface = TokenSurface.of(member.tokenizer)
        self.anchor_map = AnchorMap(anchor_tokenizer)
        self.readings = ["", " "] if self.surface.lossy else [""]
        self.memo: OrderedDict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def session(self) -> BridgeSession:
        return BridgeSession(self)

    def save_memo(self, path: str | Path) -> None:
        """Write the memoised distributions: a function of the text alone for this member, anchor
        tokenizer and settings, so a benchmark can reuse them across processes."""
        torch.save({"params": self.params.model_dump(), "memo": dict(self.memo)}, path)

    def load_memo(self, path: str | Path) -> int:
        """Add the distributions ``save_memo`` wrote with the same settings; returns how many were read."""
        if not Path(path).exists():
            return 0
        data = torch.load(path)
        if data["params"] != self.params.model_dump():
            return 0
        self.memo.update(data["memo"])
        return len(data["memo"])

    def texts_dists(self, rows: list[list[int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``text_dists`` for several texts (a remote bridge answers them in one request)."""
        return [self.text_dists(row) for row in rows]

    def text_dists(self, anchor_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """For anchor ids (T,): (ids (R, T, K), probs (R, T, K)), the next-token distribution at every
        position, one row per reading."""
        key = tuple(anchor_ids)
        if key not in self.memo:
            visible, ends = visible_ends(self.anchor_tokenizer, anchor_ids)
            session = self.session()
            ids, probs = session.steps([visible[:e] for e in ends])
            self.memo[key] = (ids.int(), probs)  # int32 ids: the memo holds every training text
            if len(self.memo) > 20_000:
                self.memo.popitem(last=False)
        return self.memo[key]


class BridgeSession:
    """The bridge along one growing text: the member's stable prefix stays cached between steps."""

    def __init__(self, bridge: CharBridge):
        self.bridge = bridge
        self.scorer = PrefixScorer(bridge.member)
        self.specials = prefix_specials(bridge.member.tokenizer)
        self._stable: tuple[str, list[int]] = ("", list(self.specials))  # text before the word, its tokens

    def steps(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` along several growing texts in turn: (ids (R, N, K), probs (R, N, K))."""
        out = [self.step(text) for text in texts]
        return torch.stack([o[0] for o in out], 1), torch.stack([o[1] for o in out], 1)

    def step(self, visible: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The anchor's next token after ``visible``: (ids (R, K), probs (R, K)) per reading."""
        b, surface = self.bridge, self.bridge.surface
        start = word_start(b.member.tokenizer, visible)
        if visible[:start] != self._stable[0]:  # a new word began: the words before it are final
            ids = member_tokenize(b.member.tokenizer, [visible[:start]])[0][0] if start else self.specials
            self._stable = (visible[:start], list(ids) or list(self.specials))
        self.scorer.set_prefix(self._stable[1])
        word = visible[start:]
        closed = surface.lossy and word != word.rstrip()  # whitespace after a WordPiece word ends it
        core = word.strip() if surface.lossy else word
        covers, exact = self._cover(core, text_start=start == 0, closed=closed)
        rows = []
        for reading in b.readings:
            hyps = covers + self._next(exact, reading, closed, bool(core))
            hyps = self._expand(visible, hyps, reading)
            rows.append(self._to_anchor(visible, hyps))
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])

    def _cover(self, word: str, text_start: bool, closed: bool) -> tuple[list[Hypothesis], list[Hypothesis]]:
        """Paths spelling ``word``: those whose last token runs past its end (with the characters beyond),
        and those ending exactly at it."""
        surface, p = self.bridge.surface, self.bridge.params
        if not word:
            return [], [Hypothesis((), 1.0, "")]
        frontier: dict[int, list[Hypothesis]] = {0: [Hypothesis((), 1.0, "")]}
        covers, exact = [], []
        for at in range(len(word)):
            paths = sorted(frontier.pop(at, []), key=lambda h: -h.mass)[: p.beam]
            if not paths:
                continue
            for h, lp in zip(paths, self.scorer.logprobs([h.path for h in paths]), strict=True):
                rest = word[at:]
                for token in self._tokens_for(rest, lp, text_start and at == 0):
                    text = surface.text(token, word_start=at == 0, text_start=text_start and at == 0)
                    if text is None:
                        continue
                    mass = h.mass * math.exp(float(lp[token]))
                    path = (*h.path, token)
                    if rest.startswith(text) and len(text) < len(rest):
                        frontier.setdefault(at + len(text), []).append(Hypothesis(path, mass, ""))
                    elif text == rest:
                        exact.append(Hypothesis(path, mass, ""))
                    elif text.startswith(rest) and not closed:
                        covers.append(Hypothesis(path, mass, text[len(rest) :]))
        return covers, exact

    def _tokens_for(self, rest: str, lp: torch.Tensor, text_start: bool) -> list[int]:
        """Member tokens that spell a prefix of ``rest`` or start with it, most likely first (at a text's
        start, Metaspace tokens are looked up with their virtual space)."""
        s = self.bridge.surface
        keys = [rest, " " + rest] if text_start and s.virtual_space else [rest]
        ids = [i for key in keys for i in s.by_prefix.get(key, [])]
        ids += [i for key in keys for k in range(1, len(key)) for i in s.by_text.get(key[:k], [])]
        if not ids:
            return []
        ids_t = torch.tensor(sorted(set(ids)))
        order = torch.argsort(lp[ids_t], descending=True)[: self.bridge.params.candidates]
        return ids_t[order].tolist()

    def _next(self, exact: list[Hypothesis], reading: str, closed: bool, inside: bool) -> list[Hypothesis]:
        """Continue paths that end exactly at the visible end with the member's next token."""
        if not exact:
            return []
        out = []
        for h, lp in zip(exact, self.scorer.logprobs([h.path for h in exact]), strict=True):
            out += self._children(
                h,
                lp,
                reading,
                word_open=inside and not closed,
                space_known=closed,
                k=self.bridge.params.candidates,
            )
        return out

    def _children(
        self, h: Hypothesis, lp: torch.Tensor, reading: str, word_open: bool, space_known: bool, k: int
    ) -> list[Hypothesis]:
        """``h`` followed by each of the ``k`` likeliest member tokens. In a WordPiece word, "##" pieces
        continue it and other tokens start a new word after ``reading`` (or after visible whitespace)."""
        surface = self.bridge.surface
        top = torch.topk(lp, min(k, lp.shape[0]))
        probs = top.values.exp()
        # the likeliest tokens up to 1 - 1e-4 of the mass: a sure member needs a handful, a lost one all k
        n = int((probs.cumsum(0) < 1 - 1e-4).sum()) + 1
        out = []
        for token, value in zip(top.indices[:n].tolist(), top.values[:n].tolist(), strict=True):
            text = surface.texts[token]
            if text is None:
                continue
            if surface.lossy:
                starts_word = surface.kinds[token] != 2
                if not starts_word and not word_open:
                    continue
                if starts_word and not space_known:
                    text = reading + text
            out.append(Hypothesis((*h.path, token), h.mass * math.exp(value), h.text + text))
        return out

    def _expand(self, visible: str, hyps: list[Hypothesis], reading: str) -> list[Hypothesis]:
        """Look further, a member token at a time (``depth`` times), for the likeliest continuations that
        could still grow into a longer anchor token; the mass a look-ahead does not cover stays put."""
        amap, p = self.bridge.anchor_map, self.bridge.params
        worth = 1e-3 * sum(h.mass for h in hyps)  # a look-ahead costs a forward: not for crumbs
        for _ in range(p.depth):
            growable = [h for h in hyps if not h.final and h.mass > worth and amap.could_extend(h.text)]
            growable = sorted(growable, key=lambda h: -h.mass)[: p.expand]
            if not growable:
                break
            chosen = {id(h) for h in growable}
            hyps = [h for h in hyps if id(h) not in chosen]
            for h, lp in zip(growable, self.scorer.logprobs([h.path for h in growable]), strict=True):
                children = self._children(
                    h, lp, reading, word_open=True, space_known=False, k=p.expand_candidates
                )
                hyps += children
                left = h.mass - sum(c.mass for c in children)
                if left > 0:
                    hyps.append(Hypothesis(h.path, left, h.text, final=True))
        return hyps

    def _to_anchor(self, visible: str, hyps: list[Hypothesis]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum the hypotheses' masses per anchor token; the top-k, normalised over what maps."""
        k = self.bridge.params.top_k
        floor = 1e-7 * sum(h.mass for h in hyps)  # far below what any kept entry can weigh
        hyps = [h for h in hyps if h.text and h.mass > floor]
        tokens = self.bridge.anchor_map.next_tokens(visible, [h.text for h in hyps])
        mass: dict[int, float] = {}
        for h, t in zip(hyps, tokens, strict=True):
            if t is not None:
                mass[t] = mass.get(t, 0.0) + h.mass
        total = sum(mass.values())
        best = sorted(mass.items(), key=lambda kv: -kv[1])[:k]
        ids = torch.zeros(k, dtype=torch.long)
        probs = torch.zeros(k)
        if total > 0:
            ids[: len(best)] = torch.tensor([t for t, _ in best])
            probs[: len(best)] = torch.tensor([m / total for _, m in best])
        return ids, probs
