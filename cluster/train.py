"""Fusion training on Ray Train: a TorchTrainer whose every worker holds a whole braid (local placement) and
trains it on its shard of the data; only the fusion parameters are DDP-wrapped, so only they are
all-reduced. The checkpoint is ``BraidedLLM.save_pretrained``'s directory: it loads with local or ray
placement alike.

    result = train_fusion_on_ray(config, texts, TrainConfig(max_steps=200), num_workers=4)
    braided = BraidedLLM.from_pretrained(result.checkpoint.path)
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from braid.braided import BraidedLLM
from braid.config import BraidConfig
from braid.tokenview import pad_id
from braid.train import TrainConfig, collate, evaluate, fusion_steps, tokenize_dataset

PROBE_FILE = "probe.pt"  # ids and the logits the trained braid gave them, to check a reload against


class FusionLoss(nn.Module):
    """What DDP wraps: the fusion modules are its only parameters; the braid is held outside the module
    tree, so DDP never broadcasts or all-reduces the frozen members."""

    def __init__(self, braided: BraidedLLM):
        super().__init__()
        self.fusion = braided.fusion_modules
        self._braided = [braided]

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        return self._braided[0](**batch).loss


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    config = BraidConfig.model_validate_json(cfg["braid"])
    train = TrainConfig.model_validate_json(cfg["train"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if torch.cuda.is_available():  # every member on this worker's GPU
        device = str(ray.train.torch.get_device())
        members = [m.model_copy(update={"device": device}) for m in config.model_configs]
        config = config.model_copy(update={"model_configs": members})
    torch.manual_seed(train.seed)  # same fusion init everywhere (DDP also broadcasts rank 0's)
    braided = BraidedLLM(config=config)
    model = ray.train.torch.prepare_model(
        FusionLoss(braided), parallel_strategy_kwargs={"find_unused_parameters": True}
    )
    examples = tokenize_dataset(braided, cfg["dataset"], train.max_length)
    held_out = examples[: max(1, len(examples) // 8)]
    shard = examples[rank::world]
    pad, total = pad_id(braided.tokenizer), train.max_steps or 100
    initial = evaluate(braided, held_out, train.batch_size, pad)
    losses: list[float] = []
    rng = random.Random(train.seed + rank)
    for step, loss in fusion_steps(braided, shard, train, total, rng, loss_fn=lambda batch: model(**batch)):
        losses.append(loss)
        if (step + 1) % train.eval_every == 0 or step + 1 == total:
            _report(braided, held_out, train, pad, step + 1, initial, losses, rank)
            braided.train()


def _report(braided, held_out, train, pad, step, initial, losses, rank) -> None:
    import ray.train

    metrics = {
        "step": step,
        "train_loss": sum(losses[-train.eval_every :]) / len(losses[-train.eval_every :]),
        "initial_eval_loss": initial,
        "eval_loss": evaluate(braided, held_out, train.batch_size, pad),
    }
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        braided.eval()
        braided.save_pretrained(tmp)
        batch = collate(held_out, pad)
        with torch.no_grad():
            logits = braided(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        torch.save(
            {k: batch[k] for k in ("input_ids", "attention_mask")} | {"logits": logits},
            Path(tmp) / PROBE_FILE,
        )
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def train_fusion_on_ray(
    config: BraidConfig,
    dataset: list[Any],
    train: TrainConfig | None = None,
    num_workers: int = 2,
    use_gpu: bool = False,
    cpus_per_worker: float = 1.0,
    storage_path: str | None = None,
    name: str = "braid-fusion",
):
    """Run the TorchTrainer; returns Ray Train's ``Result`` (``.checkpoint`` holds the saved braid)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    train = train or TrainConfig(max_steps=100)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "braid": config.model_dump_json(),
            "train": train.model_dump_json(),
            "dataset": dataset,
        },
        scaling_config=ScalingConfig(
            num_workers=num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus_per_worker}
        ),
        run_config=RunConfig(storage_path=storage_path, name=name),
    )
    return trainer.fit()
