"""Which token the anchor writes next if the text goes on with a given continuation.

The anchor's tokenizer decides it, not the longest matching token: BPE merges by rank, so " r" can be the
canonical token where " ro" exists (about 1% of the facts and arithmetic domains' tokens here). The anchor
tokenizes the continuation together with the text since its last pre-token boundary; the token that starts
where the visible text ends is the answer. If none starts there, the continuation would make the anchor
re-tokenize what it already wrote: after the anchor wrote " " alone, a continuation "5" is impossible,
because the anchor would have written " 5" as one token. Such continuations get no mass; keeping them
(renormalised over the rest) cost a tenth of the probability at most digit positions of arithmetic.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class AnchorMap:
    def __init__(self, tokenizer: Any, context: int = 64, cache_size: int = 200_000):
        self.tokenizer = tokenizer
        self.context = context  # at most this many characters of the visible text are looked at
        self.cache: OrderedDict[tuple[str, str], int | None] = OrderedDict()
        self.cache_size = cache_size
        special = set(tokenizer.all_special_ids)
        self.prefixes: set[str] = set()  # proper prefixes of the anchor's token strings
        for i, tok in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))):
            if i not in special:
                text = tokenizer.convert_tokens_to_string([tok])
                self.prefixes.update(text[:k] for k in range(1, len(text)))

    def could_extend(self, continuation: str) -> bool:
        """True when some anchor token is longer than ``continuation`` and starts with it: the anchor's
        next token then depends on what follows."""
        return continuation in self.prefixes

    def next_tokens(self, visible: str, continuations: list[str]) -> list[int | None]:
        """The anchor's next token id for each continuation of ``visible`` (None where no token of the
        anchor's tokenization starts at the end of ``visible``)."""
        tail = self._tail(visible)
        keys = [(tail, u) for u in continuations]
        found = {k: self.cache[k] for k in set(keys) if k in self.cache}
        todo = sorted(set(keys) - set(found))
        if todo:  # the fast tokenizer's own batch call: no per-row conversion into python objects
            encodings = self.tokenizer.backend_tokenizer.encode_batch(
                [t + u for t, u in todo], add_special_tokens=False
            )
            for key, enc in zip(todo, encodings, strict=True):
                found[key] = _token_at(enc.ids, enc.offsets, len(key[0]))
                self._store(key, found[key])
        return [found[k] for k in keys]

    def _tail(self, visible: str) -> str:
        """The visible text from the start of the anchor's last pre-token word: what a continuation can
        merge with (tokens never cross pre-token boundaries), and a small cache key."""
        tail = visible[-self.context :]
        pre = self.tokenizer.backend_tokenizer.pre_tokenizer
        if pre is None or not tail:
            return tail
        pieces = pre.pre_tokenize_str(tail)
        return tail[pieces[-1][1][0] :] if pieces else tail

    def _store(self, key: tuple[str, str], value: int | None) -> None:
        self.cache[key] = value
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)


def _token_at(ids: list[int], offsets: list[tuple[int, int]], position: int) -> int | None:
    """The token starting at ``position``; None when a token runs across it."""
    for token, (start, end) in zip(ids, offsets, strict=True):
        if start == position and end > start:
            return token
        if start < position < end:
            return None
    return None
