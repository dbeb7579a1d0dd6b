"""BraidSpec: one identity for a braid, whichever layer names it."""

from __future__ import annotations

import pytest

from braid.spec import BraidSpec, members_key, parse_members_key
from meta import DecisionSpace
from meta.decision import BraidingDecision, Candidates
from tune.space import BraidChoice, trial_config

SPEC = dict(members=("code", "prose"), anchor="code", strategy="attention", fusion_points=2, placement="spread",
            fusion_dim=16)  # fmt: skip


def test_key_and_parse_round_trip():
    spec = BraidSpec(**SPEC)
    assert spec.key() == "code|code,prose|attention|2|spread|16"
    assert BraidSpec.parse(spec.key()) == spec
    with_params = BraidSpec(**SPEC, strategy_params={"num_heads": 2})
    assert BraidSpec.parse(with_params.key()) == with_params and with_params.key() != spec.key()
    assert parse_members_key(members_key("code", ["prose", "code"])) == ("code", ("code", "prose"))
    with pytest.raises(ValueError, match="not a braid key .anchor.members.strategy.points.placement.dim"):
        BraidSpec.parse("code|code,prose|attention|two|spread|16")
    with pytest.raises(ValueError, match="anchor 'facts' is not one of the members"):
        BraidSpec.parse("facts|code,prose|attention|2|spread|16")


def test_a_trial_a_decision_and_a_gateway_key_name_one_braid():
    decision = BraidingDecision(**SPEC, lr=1e-3, steps=20, temperature=0.0)
    choice = BraidChoice.from_trial(trial_config(decision), anchor_depth=4)
    assert choice.structure() == decision.structure() == BraidSpec.parse(decision.key())
    assert choice.key() == decision.key() and choice.fusion_layers == (1, 3)
    assert BraidChoice.from_trial(trial_config(choice), anchor_depth=4) == choice


def test_the_grid_keys_are_the_decisions_keys():
    space = DecisionSpace(strategies=("attention", "router"), fusion_dims=(8,), steps=(20, 40))
    grid = Candidates(["code", "prose", "facts"], space)
    keys = grid.keys()
    assert keys == {grid.decision(i, 0.5, 0.0).key() for i in range(len(grid))}
    assert len(keys) == len(grid) // len(space.steps)  # steps train a braid; they are not part of it


def test_to_config_orders_the_anchor_first(trio):
    spec = BraidSpec(members=("a", "b"), anchor="b", strategy="router", fusion_points=1, placement="late",
                     fusion_dim=16)  # fmt: skip
    config = spec.to_config({"a": trio[0], "b": trio[1]})
    assert [m.model_name for m in config.model_configs] == [trio[1], trio[0]] and config.anchor == 0
    assert config.fusion_layers == [config.archs[0].num_layers - 1]
    with pytest.raises(ValueError, match=r"no path for members \['b'\]"):
        spec.to_config({"a": trio[0]})
