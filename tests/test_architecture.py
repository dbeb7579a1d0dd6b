"""How the packages meet: a new fusion strategy is one file plus its registry line, and the import contract
(`make lint`) catches a layer importing one above it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from braid import BraidConfig, BraidedLLM
from braid.fusion import FUSION_STRATEGIES
from braid.fusion.base import FusionModule
from braid.train import TrainConfig, train_fusion
from meta import DecisionSpace, MetaBraider, MetaTask
from tests.conftest import PROSE
from tune.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent


# -- the one file: a toy hidden-state strategy (every member's projection, gated by one scalar each) -------
class ToyGateFusion(FusionModule):
    name = "toy_gate"

    def __init__(self, member_dims: list[int], fusion_dim: int, params=None, receivers=None):
        super().__init__(member_dims, fusion_dim, params, receivers)
        self.gates = nn.Parameter(torch.zeros(len(member_dims)))

    def mix(self, z: torch.Tensor, valid: torch.Tensor | None, cache) -> torch.Tensor:
        w = torch.sigmoid(self.gates).view(1, -1, 1, 1)  # (1, M, 1, 1)
        return (w * z).mean(1, keepdim=True)  # (B, 1, T, F)


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(FUSION_STRATEGIES, ToyGateFusion.name, ToyGateFusion)  # the registry line


def test_a_new_strategy_trains_and_tune_and_the_meta_braider_offer_it(trio, toy_registered):
    braided = BraidedLLM(config=BraidConfig(model_configs=trio, fusion_strategy="toy_gate", fusion_dim=16))
    before = {k: v.clone() for k, v in braided.fusion_modules.state_dict().items()}
    history = train_fusion(braided, PROSE * 4, TrainConfig(max_steps=6, batch_size=4, learning_rate=1e-2))
    after = braided.fusion_modules.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith("gates"))
    assert history.train_loss[-1] < history.train_loss[0]
    assert "toy_gate" in SearchSpace().strategy_choices()  # what Tune's param_space draws from
    space = DecisionSpace()
    assert "toy_gate" in space.strategies
    pool = [
        {"name": n, "family": "llama", "domain": d, "tokenizer": "bpe", "vocab_size": 300, "hidden": 32,
         "layers": 2, "parameters": 40_000, "train_steps": 100}
        for n, d in (("prose", "prose"), ("code", "code"))
    ]  # fmt: skip
    agent = MetaBraider(pool, DecisionSpace(strategies=("toy_gate",)))
    decision = agent(MetaTask(type="code_completion", capabilities=["code"]))
    assert decision.strategy == "toy_gate"
    assert decision.to_braid_config({"prose": trio[0], "code": trio[1]}).fusion_strategy == "toy_gate"


def test_the_import_contract_fails_when_the_core_imports_a_layer_above_it(tmp_path):
    """`make lint` runs lint-imports; a function-level import from braid into serve must break it."""
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip("lint-imports is not installed in this environment (make lint installs it)")
    for pkg in ("braid", "cluster", "tune", "meta", "serve", "cli", "memory", "tools"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout[-2000:]
    with open(tmp_path / "braid" / "paths.py", "a") as f:
        f.write("\n\ndef _sneak():\n    import serve.app  # noqa: F401\n")
    broken = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert broken.returncode != 0 and "braid.paths -> serve.app" in broken.stdout
