"""ModelWrapper: one HF causal LM with access to every layer's hidden state and a way to edit it.

The braid never re-implements a model's forward: it runs the HF forward unchanged and edits the output of
chosen decoder blocks through forward hooks (``inject``). That keeps every family HF supports (Llama, Mistral,
Qwen2, Phi-3, GPT-2, ...) working with its own masks, rotary embeddings and KV cache.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from braid.config import DType, Quantization, innermost_anchor

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
LayerFn = Callable[[torch.Tensor], torch.Tensor]


def find_decoder_layers(model: nn.Module, num_layers: int) -> nn.ModuleList:
    """The ModuleList of decoder blocks: the first ModuleList with one entry per layer."""
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return module
    raise ValueError(f"cannot find the {num_layers} decoder blocks of {type(model).__name__}")


def load_tokenizer(model_name: str):
    """AutoTokenizer, except that a generic saved tokenizer.json loads exactly as saved. A saved braid's
    tokenizer is its anchor's.

    transformers 5 swaps in the model family's own tokenizer class (e.g. Qwen2's pre-tokenizer) for some
    model types even when the directory holds a generic tokenizer; locally trained tokenizers must not be.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    model_name = innermost_anchor(model_name)
    folder = Path(model_name)
    config_file = folder / "tokenizer_config.json"
    if (folder / "tokenizer.json").is_file() and config_file.is_file():
        cls = json.loads(config_file.read_text()).get("tokenizer_class")
        if cls in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return PreTrainedTokenizerFast.from_pretrained(model_name)
    return AutoTokenizer.from_pretrained(model_name)


def quantization_config(quantization: Quantization | None):
    if quantization is None:
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)
    raise ValueError(f"unknown quantization {quantization!r}; valid: '8bit', '4bit' or None")


class Member(nn.Module):
    """A braid member as the braid reads it, whatever runs it: name, tokenizer, config and sizes.

    ``ModelWrapper`` adds the weights and runs them here; ``cluster.leader.RemoteMember`` stands in for a
    member served by another process. Subclasses give ``config``, ``device`` and ``num_parameters``.
    """

    reads_stepwise = False  # after its first pass, one new token per pass (an inner braid: ``braid.nested``)

    def __init__(self, model_name: str, tokenizer: Any, quantization: Quantization | None = None):
        super().__init__()
        self.model_name, self.tokenizer, self.quantization = model_name, tokenizer, quantization

    # -- shape facts --------------------------------------------------------------------------------------
    @property
    def config(self) -> Any:
        raise NotImplementedError

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    # -- description --------------------------------------------------------------------------------------
    def features(self) -> dict[str, Any]:
        """What the meta-braider's pool reads of this member, in the seed's names (``meta.pool``); a zoo
        checkpoint's card adds its domain and held-out quality."""
        out = {
            "name": Path(str(self.model_name).rstrip("/")).name,
            "model_name": self.model_name,
            "model_type": self.config.model_type,
            "size": self.num_parameters,
            "num_layers": self.num_layers,
            "hidden_dim": self.hidden_size,
            "vocab_size": self.vocab_size,
            "quantization": self.quantization or "none",
        }
        card = Path(str(self.model_name)) / "card.json"
        if card.is_file():
            info = json.loads(card.read_text())
            out |= {
                k: info[k] for k in ("name", "domain", "held_out_char_perplexity", "train_steps") if k in info
            }
        return out

    # -- text ---------------------------------------------------------------------------------------------
    def encode(self, text: str | list[str], add_special_tokens: bool = True) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask (B, T) and character offsets (B, T, 2) of each token."""
        enc = self.tokenizer(
            text,
            return_tensors="pt",
            padding=True,
            return_offsets_mapping=True,
            add_special_tokens=add_special_tokens,
        )
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "offsets": enc["offset_mapping"],
        }

    def decode(self, ids: torch.Tensor | list[int], skip_special_tokens: bool = True) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    @staticmethod
    def crop_cache(cache: Any, length: int) -> None:
        """Keep the first ``length`` positions of a KV cache (transformers 5 crops by a negative count)."""
        remove = cache.get_seq_length() - length
        if remove > 0:
            cache.crop(-remove)

    def named_trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters of the member itself that train with the braid's fusion (none: members are frozen)."""
        return []

    def close(self) -> None:
        """Release what the member holds (an inner braid's runner); nothing for a model in this process."""

    def freeze(self) -> Member:
        return self.eval()


class ModelWrapper(Member):
    """A frozen-or-not HF causal LM plus its tokenizer, with layer access.

    ``model_name`` is a hub id or a local directory; ``quantization`` is "8bit", "4bit" or None.
    """

    def __init__(
        self,
        model_name: str,
        quantization: Quantization | None = None,
        dtype: DType | torch.dtype | None = None,
        device: str | torch.device | None = None,
        *,
        model: nn.Module | None = None,
        tokenizer: Any = None,
    ):
        super().__init__(
            model_name, tokenizer if tokenizer is not None else load_tokenizer(model_name), quantization
        )
        from transformers import AutoModelForCausalLM

        if model is None:
            torch_dtype = _DTYPES[dtype] if isinstance(dtype, str) else dtype
            kwargs: dict[str, Any] = {"dtype": torch_dtype or torch.float32}
            if quantization is not None:
                # bitsandbytes logs on every 8-bit matmul that it casts fp32 inputs to fp16.
                logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
                kwargs["quantization_config"] = quantization_config(quantization)
                kwargs["device_map"] = str(device or "cpu")
            model = AutoModelForCausalLM.from_pretrained(model_name, **kwargs)
            if device is not None and quantization is None:
                model = model.to(device)
        self.model = model.eval()
        self.layers = find_decoder_layers(self.model, self.num_layers)

    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # -- compute ------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
        output_hidden_states: bool = True,
        **kwargs: Any,
    ):
        """HF forward; ``.hidden_states`` holds the embeddings first, then every block's output."""
        return self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=None if attention_mask is None else attention_mask.to(self.device),
            past_key_values=past_key_values,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )

    @functools.cached_property
    def no_logits(self) -> dict[str, Any]:
        """Forward kwargs that skip the LM head (empty logits, (B, 0, V)) where the family supports it."""
        if "logits_to_keep" not in inspect.signature(self.model.forward).parameters:
            return {}
        return {"logits_to_keep": torch.zeros(0, dtype=torch.long)}  # indexes a tensor on any device

    def get_layer_output(
        self, input_ids: torch.Tensor, layer_idx: int, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``hidden_states[layer_idx]``: 0 is the embeddings, k the output of block k-1. (B, T, D)"""
        if not 0 <= layer_idx <= self.num_layers:
            raise IndexError(f"layer_idx={layer_idx} is out of range 0..{self.num_layers}")
        return self.forward(input_ids=input_ids, attention_mask=attention_mask).hidden_states[layer_idx]

    def new_cache(self):
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    @contextlib.contextmanager
    def inject(self, fns: dict[int, LayerFn]) -> Iterator[None]:
        """While active, block k's output hidden state h becomes ``fns[k](h)`` before later blocks see it.

        The hooks run before HF's own output capture, so ``hidden_states`` shows the edited streams.
        """
        handles = [
            self.layers[k].register_forward_hook(_edit_output(fn), prepend=True) for k, fn in fns.items()
        ]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @contextlib.contextmanager
    def capture_final_hidden(self) -> Iterator[Any]:
        """While active, ``box.value`` is the last final hidden state the LM head read: (B, T, D), after the
        model's final norm. Cheaper than ``output_hidden_states`` and the same for every family."""
        box = types.SimpleNamespace(value=None)

        def grab(module: nn.Module, args: Any) -> None:
            box.value = args[0]

        handle = self.model.get_output_embeddings().register_forward_pre_hook(grab)
        try:
            yield box
        finally:
            handle.remove()

    def freeze(self) -> ModelWrapper:
        for p in self.model.parameters():
            p.requires_grad_(False)
        return self.eval()


def _edit_output(fn: LayerFn):
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (fn(output[0]), *output[1:])
        return fn(output)

    return hook
