import pytest

from cluster import RayPlacement

# Fractions, so a three-bundle braid fits the two CPUs of a CI machine.
SMALL = RayPlacement(cpus_per_member=0.5, fusion_cpus=0.5, exchange_timeout_s=30, ready_timeout_s=180)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
