import pytest


@pytest.fixture(scope="session")
def zoo_and_pool(tiny_zoo):
    from braid.zoo.build import load_cards
    from tune.records import ModelFeatures

    cache, paths = tiny_zoo
    return paths, [ModelFeatures.from_card(c) for c in load_cards(tiny=True, cache_dir=cache)]
