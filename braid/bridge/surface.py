"""What a member's tokens write: the characters each token appends, read from its tokenizer's decoder.

Three conventions cover the tokenizers here and most in use: byte-level BPE (a token is its bytes, spaces
included), Metaspace (Unigram / SentencePiece: "▁" is a space; a text's first token carries a virtual one),
and WordPiece ("##" continues a word; any other token starts a new word and the whitespace before it was
dropped, so a WordPiece member cannot tell "a=b" from "a = b": it is *lossy* about whitespace).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PLAIN, WORD, CONT = 0, 1, 2  # appends exactly / starts a word (whitespace before unknown) / continues one


@dataclass
class TokenSurface:
    texts: list[str | None]  # per member id: the characters it appends; None for specials
    kinds: list[int]  # PLAIN, WORD or CONT
    lossy: bool  # whitespace between words was dropped (WordPiece)
    virtual_space: bool  # Metaspace: a text's first token starts with a space the text does not have
    by_text: dict[str, list[int]] = field(default_factory=dict)  # ids writing exactly this text
    by_prefix: dict[str, list[int]] = field(default_factory=dict)  # ids whose text starts with the key

    @classmethod
    def of(cls, tokenizer: Any) -> TokenSurface:
        decoder = (json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}).get("type")
        special = set(tokenizer.all_special_ids)
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        texts: list[str | None] = []
        kinds: list[int] = []
        for i, tok in enumerate(tokens):
            text, kind = _surface(tokenizer, tok, decoder)
            texts.append(None if i in special or not text or "\ufffd" in text else text)
            kinds.append(kind)
        surface = cls(texts, kinds, lossy=decoder == "WordPiece", virtual_space=decoder == "Metaspace")
        for i, text in enumerate(texts):
            if text is None:
                continue
            surface.by_text.setdefault(text, []).append(i)
            for k in range(1, len(text) + 1):
                surface.by_prefix.setdefault(text[:k], []).append(i)
        return surface

    def text(self, token: int, word_start: bool, text_start: bool) -> str | None:
        """What ``token`` writes as the first token of a word (``word_start``) or inside one; None where it
        cannot stand there (a "##" piece starting a word, a new WordPiece word inside one)."""
        text, kind = self.texts[token], self.kinds[token]
        if text is None or (self.lossy and (kind == CONT) == word_start):
            return None
        if text_start and self.virtual_space and text.startswith(" "):
            return text[1:]
        return text


def _surface(tokenizer: Any, token: str, decoder: str | None) -> tuple[str, int]:
    if decoder == "Metaspace":
        return token.replace("▁", " "), PLAIN
    if decoder == "WordPiece":
        return (token[2:], CONT) if token.startswith("##") else (token, WORD)
    return tokenizer.convert_tokens_to_string([token]), PLAIN


def is_lossy(tokenizer: Any) -> bool:
    """True for tokenizers that drop the whitespace between words (WordPiece)."""
    return (json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}).get("type") == "WordPiece"


def word_start(tokenizer: Any, text: str) -> int:
    """Where the member's last pre-token word of ``text`` starts: tokens never merge across pre-tokens,
    so everything before it is tokenized for good."""
    backend = tokenizer.backend_tokenizer
    if backend.pre_tokenizer is None or not text:
        return 0
    normalized = text if backend.normalizer is None else backend.normalizer.normalize_str(text)
    if len(normalized) != len(text):  # a normalizer that changes lengths: offsets no longer line up
        return 0
    pieces = backend.pre_tokenizer.pre_tokenize_str(normalized)
    return pieces[-1][1][0] if pieces else len(text)
