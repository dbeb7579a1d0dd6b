"""The model pool as the meta-braider reads it: one feature dict per model, whatever describes it.

An entry may be
- a tune ``ModelFeatures``, or a dict of its fields (``name``, ``parameters``, ``layers``, ``hidden``,
  ``vocab_size``, ``domain``, ...): taken as it is;
- the seed's dict (``model_name``, ``size``, ``num_layers``, ``hidden_dim``, ``domain``, ``quantization``,
  ``recency``, ``role``): what it leaves out is read from the checkpoint at ``model_name`` (its zoo card when
  it has one, else its config), so ``{"model_name": path, "domain": "code"}`` is enough;
- a model object, a ``braid.model_wrapper.Member`` (a ``ModelWrapper`` or a loaded braid's member): it
  describes itself.

``describe_pool`` returns the feature dicts and, for entries that name a checkpoint, where each model loads
from (name -> path), which the agent needs to build the braids it decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from braid.model_wrapper import Member

# the seed's names for the features the encoder reads
SEED_KEYS = {"size": "parameters", "num_layers": "layers", "hidden_dim": "hidden"}
SIZES = ("parameters", "layers", "hidden", "vocab_size")


def describe_pool(model_pool: list[Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(features per model, name -> checkpoint path for the models that name one)."""
    features, paths = [], {}
    for entry in model_pool:
        f, path = describe(entry)
        features.append(f)
        if path is not None:
            paths[f["name"]] = path
    return features, paths


def describe(entry: Any) -> tuple[dict[str, Any], str | None]:
    """One model's features (with at least ``name`` and the encoder's sizes) and its checkpoint path."""
    if isinstance(entry, Member):
        entry = entry.features()
    elif isinstance(entry, BaseModel):
        entry = entry.model_dump()
    elif not isinstance(entry, dict):
        raise TypeError(
            f"a pool entry is a dict, a ModelFeatures or a loaded model (ModelWrapper); got {type(entry).__name__}"
        )
    f = {SEED_KEYS.get(k, k): v for k, v in entry.items()}
    source = f.get("model_name")
    if "name" not in f:
        if not source:
            raise ValueError(f"a pool entry needs 'name' or 'model_name': {entry}")
        f["name"] = Path(str(source).rstrip("/")).name
    if missing := [k for k in SIZES if k not in f]:
        f = {**_from_checkpoint(f["name"], source, missing), **f}
    return f, (str(source) if source else None)


def _from_checkpoint(name: str, source: str | None, missing: list[str]) -> dict[str, Any]:
    """What the checkpoint at ``source`` says of the model: its zoo card, else its config's sizes."""
    if source and (Path(source) / "card.json").is_file():
        return json.loads((Path(source) / "card.json").read_text())
    try:
        if not source:
            raise OSError("no model_name")
        return _config_sizes(source)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"pool model {name!r}: {', '.join(missing)} not given and not readable from "
            f"model_name={source!r} ({e}); give them (size, num_layers, hidden_dim, vocab_size) or a "
            "model_name that is a local checkpoint or a hub id in the local cache"
        ) from None


def _config_sizes(source: str) -> dict[str, Any]:
    """Sizes from a checkpoint's config, the parameters counted on the meta device (no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(source)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "vocab_size": config.vocab_size,
        "family": config.model_type,
    }
