"""Small real language models trained here: tokenizers, tiny HF configs, a pretraining loop, corpora."""

from braid.zoo.architectures import FAMILIES, build_model, tiny_config
from braid.zoo.pretrain import pretrain_lm
from braid.zoo.tokenizers import train_tokenizer

__all__ = ["FAMILIES", "build_model", "pretrain_lm", "tiny_config", "train_tokenizer"]
