from cluster import RayPlacement

# Fractions, so a three-member braid fits the two CPUs of a CI machine.
SMALL = RayPlacement(cpus_per_member=0.5, exchange_timeout_s=30, ready_timeout_s=180)
