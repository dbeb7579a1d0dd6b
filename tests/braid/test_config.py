import pytest
from pydantic import ValidationError

from braid import BraidConfig, BraidedLLM, ModelWrapper
from braid.config import default_fusion_layers, proportional_layer


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any attempt to load weights fails the test: bad configs must be rejected first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was validated")

    monkeypatch.setattr(ModelWrapper, "__init__", refuse)


def members(trio, n=2):
    return [{"model_name": p} for p in trio[:n]]


def error_fields(excinfo) -> set[str]:
    return {".".join(str(x) for x in e["loc"]) for e in excinfo.value.errors()}


def test_unknown_strategy_lists_valid_ones(trio, no_model_loads):
    with pytest.raises(ValidationError) as e:
        BraidedLLM(model_configs=members(trio), fusion_strategy="average")
    assert "fusion_strategy" in error_fields(e)
    assert "attention, calm, learned_weighted, output_router, pointer, router" in str(e.value)


def test_fusion_layer_out_of_range(trio, no_model_loads):
    with pytest.raises(ValidationError) as e:
        BraidedLLM(model_configs=members(trio), fusion_layers=[0, 2])  # anchor has 2 layers
    assert "fusion_layers" in error_fields(e)
    assert "0..1" in str(e.value)


def test_anchor_out_of_range(trio, no_model_loads):
    with pytest.raises(ValidationError) as e:
        BraidedLLM(model_configs=members(trio), anchor=2)
    assert "anchor" in error_fields(e)


def test_fewer_than_two_members(trio, no_model_loads):
    with pytest.raises(ValidationError) as e:
        BraidedLLM(model_configs=members(trio, 1))
    assert "model_configs" in error_fields(e)


def test_unknown_quantization(trio, no_model_loads):
    with pytest.raises(ValidationError) as e:
        BraidedLLM(model_configs=[{"model_name": trio[0]}, {"model_name": trio[1], "quantization": "3bit"}])
    assert "model_configs.1.quantization" in error_fields(e)


def test_unknown_strategy_param_and_bad_heads(trio, no_model_loads):
    with pytest.raises(ValidationError) as e:
        BraidConfig(model_configs=members(trio), fusion_strategy="router", strategy_params={"heads": 2})
    assert "strategy_params.heads" in error_fields(e)
    with pytest.raises(ValidationError) as e:
        BraidConfig(model_configs=members(trio), fusion_strategy="attention", fusion_dim=30)
    assert "fusion_dim" in error_fields(e)


def test_layer_map_checked(trio, no_model_loads):
    with pytest.raises(ValidationError) as e:
        BraidConfig(model_configs=members(trio), fusion_layers=[0, 1], layer_map={1: [2, 1]})
    assert "layer_map" in error_fields(e)


def test_missing_model_is_named(tmp_path, trio):
    with pytest.raises(
        ValidationError, match=r"model_configs\[0\]: no model at .*nope' \(no such directory\)"
    ):
        BraidConfig(model_configs=[str(tmp_path / "nope"), str(tmp_path / "nope2")])
    # a non-anchor member is checked too, before anything loads (it once failed 267 lines deep in loading)
    with pytest.raises(ValidationError, match=r"model_configs\[1\]: no model at .*nope'") as e:
        BraidConfig(model_configs=[trio[0], str(tmp_path / "nope")], fusion_layers=[0])
    assert "fusion_layers" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match="no config.json there"):
        BraidConfig(model_configs=[trio[0], str(tmp_path / "empty")])


def test_layer_plan_maps_proportionally(trio):
    cfg = BraidConfig(model_configs=trio, fusion_layers=[0, 1])  # depths 2, 3, 4
    assert cfg.member_layers() == [[0, 1], [1, 2], [1, 3]]
    explicit = BraidConfig(model_configs=trio, fusion_layers=[0, 1], layer_map={2: [0, 0]})
    assert explicit.member_layers()[2] == [0, 0]
    assert [proportional_layer(k, 4, 2) for k in range(4)] == [0, 0, 1, 1]
    assert default_fusion_layers(32) == [7, 15, 23, 31]
    assert default_fusion_layers(3) == [0, 1, 2]


def test_yaml_round_trip(trio, tmp_path):
    cfg = BraidConfig(model_configs=trio, fusion_strategy="attention", fusion_dim=32, fusion_layers=[1])
    cfg.to_yaml(tmp_path / "braid.yaml")
    assert BraidConfig.from_yaml(tmp_path / "braid.yaml") == cfg


def test_combined_strategies_take_params_per_part(trio, no_model_loads):
    cfg = BraidConfig(
        model_configs=members(trio),
        fusion_strategy="pointer+attention",
        strategy_params={"attention": {"num_heads": 2}, "pointer": {"window": 8}},
    )
    assert cfg.fusion_strategy == "attention+pointer"  # hidden part first
    assert (cfg.hidden_strategy, cfg.output_strategy) == ("attention", "pointer")
    assert cfg.hidden_params.num_heads == 2 and cfg.output_params.window == 8
    with pytest.raises(ValidationError, match="keyed by its parts"):
        BraidConfig(
            model_configs=members(trio), fusion_strategy="attention+pointer", strategy_params={"window": 8}
        )


def test_two_strategies_of_one_level_are_refused(trio, no_model_loads):
    with pytest.raises(ValidationError, match="two hidden-level strategies"):
        BraidConfig(model_configs=members(trio), fusion_strategy="attention+router")


def test_output_level_strategy_alone_has_no_fusion_layers(trio, no_model_loads):
    assert BraidConfig(model_configs=members(trio), fusion_strategy="output_router").fusion_layers == []
    with pytest.raises(ValidationError) as e:
        BraidConfig(model_configs=members(trio), fusion_strategy="pointer", fusion_layers=[0])
    assert "fusion_layers" in error_fields(e) and "attention+pointer" in str(e.value)
