"""Acceptance 3: a braid learns to read what a second member knows, and generalises to held-out facts."""

import pytest
import torch

from braid import BraidedLLM
from braid.train import TrainConfig, collate, evaluate, tokenize_dataset, train_fusion
from braid.zoo import build_model, pretrain_lm
from braid.zoo.corpora import FactsDomain, value_labelled


@pytest.fixture(scope="module")
def facts_pair(save_pico, tokenizer):
    """An expert that memorised 60 facts, and an anchor that knows only their format."""
    domain = FactsDomain.make(60, seed=0)
    expert = build_model("qwen2", len(tokenizer), hidden=64, layers=3, seed=1)
    pretrain_lm(expert, tokenizer, domain.texts(2000, seed=1), steps=600, lr=3e-3)
    anchor = build_model("llama", len(tokenizer), hidden=48, layers=2, seed=2)
    pretrain_lm(anchor, tokenizer, domain.format_texts(2000, seed=2), steps=200, lr=3e-3)
    paths = [save_pico(anchor, "facts-anchor"), save_pico(expert, "facts-expert")]
    train = value_labelled(tokenizer, domain.texts(400, seed=3, subset=slice(0, 40)))
    held_out = value_labelled(tokenizer, domain.texts(100, seed=4, subset=slice(40, 60)))  # unseen facts
    return paths, train, held_out


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["learned_weighted", "attention", "router"])
def test_training_reads_the_experts_knowledge(facts_pair, strategy):
    paths, train, held_out = facts_pair
    braided = BraidedLLM(model_configs=paths, fusion_strategy=strategy, fusion_layers=[0, 1], fusion_dim=32)
    held = tokenize_dataset(braided, held_out, 128)
    anchor_loss = evaluate(braided, held, 16, pad_id=2)  # untrained braid == anchor
    expert_loss = evaluate(BraidedLLM(model_configs=paths[::-1], fusion_dim=32), held, 16, pad_id=2)
    assert expert_loss < 0.2 < 1.5 < anchor_loss  # the task is meaningful: only the expert knows

    before = {n: p.clone() for n, p in braided.models.named_parameters()}
    seen_grads: set[str] = set()
    for name, p in braided.named_parameters():
        if p.requires_grad:
            p.register_hook(lambda g, name=name: seen_grads.add(name))
    history = train_fusion(
        braided, train, TrainConfig(max_steps=200, learning_rate=3e-3, progress=False), eval_dataset=held_out
    )

    assert len(history.train_loss) == 200 and history.eval_steps[-1] == 200
    assert history.final_eval_loss < 0.6 * anchor_loss  # well below the anchor, on facts never trained on
    assert all(torch.equal(p, before[n]) for n, p in braided.models.named_parameters())  # bases bit-identical
    assert all(p.grad is None for p in braided.models.parameters())
    assert seen_grads and all(n.startswith("fusion_modules.") for n in seen_grads)


def test_collate_pads_right_and_masks_labels():
    batch = collate([([5, 6, 7], [5, 6, 7]), ([8, 9], [-100, 9])], pad_id=2)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [-100, 9, -100]]


def test_bad_dataset_items_are_named(trio):
    braided = BraidedLLM(model_configs=trio[:2], fusion_dim=32)
    with pytest.raises(TypeError, match=r"dataset\[1\]"):
        tokenize_dataset(braided, ["fine text", 42], 16)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=0)


def test_gates_get_their_own_larger_learning_rate(trio):
    from braid.train import make_optimizer

    braided = BraidedLLM(model_configs=trio[:2], fusion_dim=32)
    groups = make_optimizer(braided, TrainConfig(learning_rate=1e-3)).param_groups
    gate_group = next(g for g in groups if any(p is braided.fusion_modules[0].gate for p in g["params"]))
    assert gate_group["lr"] == pytest.approx(1e-2)
    assert sum(len(g["params"]) for g in groups) == len(braided.fusion_parameters())
