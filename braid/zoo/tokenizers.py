"""Tokenizers trained locally with the `tokenizers` library (nothing can be downloaded here).

Three kinds with different models, pre-tokenizers and special-token conventions, so cross-tokenizer
braids meet real differences: byte-level BPE (no BOS), WordPiece ([CLS] ... [SEP]), Unigram (<s> BOS).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Kind = Literal["bpe", "wordpiece", "unigram"]
SPECIALS = {
    "bpe": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
    "wordpiece": {
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "eos_token": "[SEP]",
    },
    "unigram": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
}


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512, kind: Kind = "bpe"):
    """Train a tokenizer of ``kind`` on ``texts``; returns a transformers PreTrainedTokenizerFast."""
    from transformers import PreTrainedTokenizerFast

    builders = {"bpe": _bpe, "wordpiece": _wordpiece, "unigram": _unigram}
    if kind not in builders:
        raise ValueError(f"unknown tokenizer kind {kind!r}; valid: {', '.join(builders)}")
    specials = SPECIALS[kind]
    tok = builders[kind](list(texts), vocab_size, list(dict.fromkeys(specials.values())))
    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


def _canonical(tok, specials: list[str]):
    """The trained tokenizer with its vocabulary in a fixed order and its scores rounded.

    The WordPiece trainer numbers its vocabulary in hash order and the Unigram trainer's scores differ in
    the last bits from run to run (same pieces, same behaviour), which made the zoo's models differ on
    every build. Ids are what a model's embedding rows mean, so the zoo needs them fixed: specials first,
    then WordPiece tokens by name, Unigram pieces by rounded score (then name).
    """
    import json

    from tokenizers import Tokenizer

    data = json.loads(tok.to_str())
    model = data["model"]
    if model["type"] == "WordPiece":
        rest = sorted(t for t in model["vocab"] if t not in specials)
        model["vocab"] = {t: i for i, t in enumerate([*specials, *rest])}
        ids = model["vocab"]
    elif model["type"] == "Unigram":
        pieces = [(p, round(score, 8)) for p, score in model["vocab"]]
        first = [next(x for x in pieces if x[0] == s) for s in specials]
        rest = sorted((x for x in pieces if x[0] not in specials), key=lambda x: (-x[1], x[0]))
        model["vocab"] = [list(x) for x in [*first, *rest]]
        ids = {p: i for i, (p, _) in enumerate(model["vocab"])}
        model["unk_id"] = ids["<unk>"]
    else:
        return tok
    for added in data["added_tokens"]:
        added["id"] = ids[added["content"]]
    return Tokenizer.from_str(json.dumps(data))


def _bpe(texts: list[str], vocab_size: int, specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _wordpiece(texts: list[str], vocab_size: int, specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok = _canonical(tok, specials)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def _unigram(texts: list[str], vocab_size: int, specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok = _canonical(tok, specials)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok
