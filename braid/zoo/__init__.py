"""Small real language models trained here: tokenizers, tiny HF configs, corpora, domains, the zoo."""

from braid.zoo.architectures import FAMILIES, build_model, tiny_config
from braid.zoo.build import build_zoo, load_cards, zoo_spec
from braid.zoo.pretrain import pretrain_lm
from braid.zoo.tokenizers import train_tokenizer

__all__ = [
    "FAMILIES",
    "build_model",
    "build_zoo",
    "load_cards",
    "pretrain_lm",
    "tiny_config",
    "train_tokenizer",
    "zoo_spec",
]
