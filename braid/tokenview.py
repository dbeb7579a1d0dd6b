"""How each member sees the text: the anchor's visible text, and member tokenizations with end offsets.

Members read the text the anchor has written so far: its decoded tokens, grown one anchor token at a time
and never rewritten (a token that only completes part of a character, or would change earlier text, adds
nothing until the text grows again). Forward passes and generation use this one definition, so both see
exactly the same text at every anchor position.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any


def visible_ends(tokenizer: Any, ids: Sequence[int], start: str = "") -> tuple[str, list[int]]:
    """The visible text after ``ids`` (continuing ``start``) and, per token, the end of the text visible then."""
    text, ends = start, []
    for i in range(len(ids)):
        text = extend_visible(text, start + _decode(tokenizer, ids[: i + 1]))
        ends.append(len(text))
    return text, ends


def extend_visible(visible: str, decoded: str) -> str:
    """The visible text grows only by extension, and never ends in a partial character."""
    decoded = decoded.rstrip("\ufffd")
    return decoded if decoded.startswith(visible) else visible


def pad_id(tokenizer: Any) -> int:
    """The id to pad with: the tokenizer's pad token, else EOS, else UNK, else 0 (padding is masked anyway)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)


@functools.lru_cache(maxsize=64)
def _prefix_specials_cached(tokenizer: Any) -> tuple[int, ...]:
    with_special = tokenizer("x", add_special_tokens=True)["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    for k in range(len(with_special) - len(plain) + 1):
        if with_special[k : k + len(plain)] == plain:
            return tuple(with_special[:k])
    return ()


def prefix_specials(tokenizer: Any) -> list[int]:
    """Special ids the tokenizer puts before content (BOS, [CLS]); trailing ones (EOS, [SEP]) are dropped,
    since a text that keeps growing has no end yet."""
    return list(_prefix_specials_cached(tokenizer))


def member_tokenize(
    tokenizer: Any, texts: list[str], use_offsets: bool | None = None
) -> list[tuple[list[int], list[int]]]:
    """Per text: member ids (prefix specials + content) and each token's end offset in the text.

    Uses the tokenizer's offset mapping when it has one; otherwise ends come from decoding token prefixes.
    """
    specials = prefix_specials(tokenizer)
    if use_offsets is None:
        use_offsets = bool(getattr(tokenizer, "is_fast", False))
    out = []
    if use_offsets:
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        for ids, offsets in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
            out.append((specials + list(ids), [0] * len(specials) + _monotone([e for _, e in offsets])))
    else:
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            out.append((specials + list(ids), [0] * len(specials) + _decoded_ends(tokenizer, ids, text)))
    return out


def _decoded_ends(tokenizer: Any, ids: list[int], text: str) -> list[int]:
    """Ends from decoding each token prefix; the pieces of a split character end where it completes."""
    ends, partial = [], []
    for i in range(len(ids)):
        piece = _decode(tokenizer, ids[: i + 1])
        partial.append(piece.endswith("\ufffd"))
        ends.append(len(common_prefix(piece.rstrip("\ufffd"), text)))
    for i in range(len(ids) - 2, -1, -1):
        if partial[i]:
            ends[i] = ends[i + 1]
    return _monotone(ends)


def _monotone(ends: list[int]) -> list[int]:
    out, top = [], 0
    for e in ends:
        top = max(top, e)
        out.append(top)
    return out


def common_prefix(a: Sequence, b: Sequence) -> Sequence:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]
