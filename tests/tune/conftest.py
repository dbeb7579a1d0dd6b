import pytest


@pytest.fixture(scope="session")
def zoo_and_pool(tiny_zoo):
    from braid.zoo.build import load_cards
    from tune.records import ModelFeatures

    cache, paths = tiny_zoo
    return paths, [ModelFeatures.from_card(c) for c in load_cards(tiny=True, cache_dir=cache)]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
