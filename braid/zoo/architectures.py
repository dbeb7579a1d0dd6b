"""Tiny configs of real HF architectures, so tests and the zoo build genuine models without downloads."""

from __future__ import annotations

from typing import Any

FAMILIES = ("llama", "mistral", "qwen2", "phi3", "gpt2")


def tiny_config(
    family: str, vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4, **extra: Any
):
    """A small config of ``family``; dropout off so a frozen member is deterministic."""
    import transformers as tf

    common = {"vocab_size": vocab_size, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}
    if family == "gpt2":
        cfg = tf.GPT2Config(
            n_embd=hidden, n_layer=layers, n_head=heads, n_positions=512,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
        )  # fmt: skip
    else:
        classes = {
            "llama": tf.LlamaConfig,
            "mistral": tf.MistralConfig,
            "qwen2": tf.Qwen2Config,
            "phi3": tf.Phi3Config,
        }
        if family not in classes:
            raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
        cfg = classes[family](
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=512,
            tie_word_embeddings=False,
            **common,
        )
    for key, value in extra.items():
        setattr(cfg, key, value)
    return cfg


def build_model(family: str, vocab_size: int, seed: int = 0, **kwargs: Any):
    """A freshly initialised causal LM of ``family`` (seeded)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(family, vocab_size, **kwargs)).eval()
