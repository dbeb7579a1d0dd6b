"""The saved-braid format, in one place: file names, the fusion weights' signature, reading and writing.

A saved braid is a directory: ``braid_config.json`` (the ``BraidConfig``, local member paths made absolute)
and ``fusion.safetensors`` (the fusion modules' state, with the format and the braid's signature in its
metadata). Member weights are referenced by name or path, never copied. Sweep checkpoints (``tune``), the
Ray placement's fusion actor (``cluster``) and the gateway's braids (``serve``) read and write through here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from braid.config import BRAID_CONFIG_FILE, BraidConfig
from braid.fusion.output import OUTPUT_LAYOUT

if TYPE_CHECKING:
    from braid.braided import BraidedLLM

FUSION_FILE = "fusion.safetensors"
CONFIG_FILE = BRAID_CONFIG_FILE
FORMAT = "llm-braid-fusion/1"


def fusion_path(directory: str | Path) -> Path:
    return Path(directory) / FUSION_FILE


def inner_fusion_path(directory: str | Path, member: int) -> Path:
    """Where a braid saves the fusion of member ``member`` when that member is a braid trained with it."""
    return Path(directory) / f"member-{member}-{FUSION_FILE}"


def has_fusion(directory: str | Path | None) -> bool:
    """True when ``directory`` holds fusion weights (a saved braid or a sweep trial's checkpoint)."""
    return directory is not None and fusion_path(directory).is_file()


def read_config(directory: str | Path) -> BraidConfig:
    """The config of a saved braid, or ValueError naming what the directory lacks."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(
            f"{directory} is not a saved braid (no {CONFIG_FILE}): give a directory save_pretrained wrote"
        )
    return BraidConfig.model_validate_json(path.read_text())


def signature(braid: BraidedLLM) -> dict[str, Any]:
    """What fusion weights depend on; loading into a braid with another signature is an error."""
    cfg = braid.config
    sig = {
        "fusion_strategy": cfg.fusion_strategy,
        "fusion_layers": cfg.fusion_layers,
        "member_layers": braid.lockstep.plan,
        "member_dims": [m.hidden_size for m in braid.models],
        "fusion_dim": cfg.fusion_dim,
        "strategy_params": _signature_params(cfg),
    }
    if cfg.output_strategy is not None:  # hidden-state checkpoints keep the layout they had
        sig["output_layout"] = OUTPUT_LAYOUT
    if cfg.points is not None:  # per-point architectures; braids without them keep the signature they had
        sig["points"] = [p.model_dump() for p in cfg.points]
    return sig


def _signature_params(cfg: BraidConfig) -> dict[str, Any]:
    if cfg.output_strategy is None:  # the layout checkpoints of hidden-state braids have always had
        return cfg.hidden_params.model_dump()
    parts = {cfg.hidden_strategy: cfg.hidden_params, cfg.output_strategy: cfg.output_params}
    return {name: p.model_dump() for name, p in parts.items() if name is not None}


def save_fusion(braid: BraidedLLM, path: str | Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in braid.fusion_modules.state_dict().items()}
    meta = {"format": FORMAT, "signature": json.dumps(signature(braid), sort_keys=True)}
    save_file(tensors, str(path), metadata=meta)


def load_fusion(braid: BraidedLLM, path: str | Path) -> None:
    """Fusion weights into ``braid``, or ValueError when the file is not a fusion checkpoint or was saved by
    a braid of another signature (naming each field that differs)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a braid fusion checkpoint (format {meta.get('format')!r})")
    saved, mine = json.loads(meta["signature"]), signature(braid)
    diff = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
    if diff:
        lines = ", ".join(f"{k}: saved {a!r}, this braid {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"fusion weights in {path} do not fit this braid ({lines})")
    braid.fusion_modules.load_state_dict(load_file(str(path), device=str(braid.anchor_model.device)))


def save_braid(braid: BraidedLLM, directory: str | Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(member_paths_resolved(braid.config).model_dump_json(indent=2))
    save_fusion(braid, directory / FUSION_FILE)


def member_paths_resolved(config: BraidConfig) -> BraidConfig:
    """Local member directories as absolute paths, so a saved braid loads from anywhere."""
    members = [
        m.model_copy(update={"model_name": str(Path(m.model_name).resolve())})
        if Path(m.model_name).is_dir()
        else m
        for m in config.model_configs
    ]
    return config.model_copy(update={"model_configs": members})
