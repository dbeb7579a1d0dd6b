"""Ray Tune sweeps over braid configs and the sweep records that pretrain the meta-braider (tune issue)."""
