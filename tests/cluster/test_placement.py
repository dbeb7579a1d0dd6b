"""RayPlacement without Ray: CPUs shared from what the cluster has, and a fit check that names the shortfall."""

import pytest

from cluster import RayPlacement


def test_unset_cpus_share_the_cluster():
    placed = RayPlacement().resolved(num_members=2, cluster_cpus=2)
    assert placed.cpus_per_member == 0.66  # a share is left for the process that owns the braid
    assert RayPlacement().resolved(2, cluster_cpus=64).cpus_per_member == 1.0  # at most one each
    assert RayPlacement(cpus_per_member=0.25).resolved(3, 2).cpus_per_member == 0.25  # set values are kept
    with pytest.raises(ValueError, match="resolve the placement"):
        RayPlacement().bundles(2, 0)


def test_fit_check_names_what_is_missing():
    two_nodes = [{"CPU": 2.0}, {"CPU": 2.0, "GPU": 1.0}]
    placed = RayPlacement(cpus_per_member=1.0).resolved(3, 4)
    placed.check_fits(placed.bundles(4, 0), two_nodes)  # 4 CPUs over 2 nodes: fits
    with pytest.raises(RuntimeError, match="need 5 CPU in all; the cluster has 4: lower cpus_per_member"):
        placed.check_fits(placed.bundles(5, 0), two_nodes)
    with pytest.raises(RuntimeError, match="need 3 GPU in all; the cluster has 1"):
        placed.check_fits(placed.bundles(3, cluster_gpus=1), two_nodes)
    strict = placed.model_copy(update={"strategy": "STRICT_PACK"})
    with pytest.raises(RuntimeError, match="need 3 CPU on one node .STRICT_PACK.; the largest has 2"):
        strict.check_fits(strict.bundles(3, 0), two_nodes)
    spread = placed.model_copy(update={"strategy": "STRICT_SPREAD", "cpus_per_member": 0.5})
    with pytest.raises(RuntimeError, match="need one node each .STRICT_SPREAD.; the cluster has 2"):
        spread.check_fits(spread.bundles(3, 0), two_nodes)
