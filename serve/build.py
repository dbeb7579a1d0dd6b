"""A Coordinator from a ServeConfig: memory, tools, the meta-braider (with its online state), the sweep
records for trained fusion weights, the response log, and the braids to generate with."""

from __future__ import annotations

from typing import Any

from serve.config import ServeConfig
from serve.coordinator import Coordinator


def build_coordinator(config: ServeConfig, braids: Any = None) -> Coordinator:
    from serve.braids import LocalBraids
    from serve.online import OnlineMeta
    from serve.responses import ResponseLog

    state = config.state_dir
    state.mkdir(parents=True, exist_ok=True)
    memory = tools = None
    if config.use_memory:
        from memory import MemoryManager

        memory = MemoryManager(data_dir=state)
    if config.use_tools:
        from tools import ToolExecutor

        tools = ToolExecutor(config.tools, memory_manager=memory)
    meta = None
    if config.meta_braider and config.federated:
        meta = OnlineMeta.federated(config.meta_braider, config.federated, state)
    elif config.meta_braider:
        meta = OnlineMeta.open(config.meta_braider, state)
    if braids is None:
        braids = LocalBraids(braid_factory(config, meta), config.deployment.braids_per_replica)
    return Coordinator(
        memory_manager=memory, tool_executor=tools, meta_braider=meta, braids=braids,
        responses=ResponseLog(state / "responses.sqlite"), default_model=config.default_model,
    )  # fmt: skip


def braid_factory(config: ServeConfig, meta: Any = None):
    """What builds braids by key: the pool's paths and decision grid (from the meta-braider checkpoint),
    pinned braids, records, and the operator's policy for client-named structures."""
    from serve.braids import BraidFactory

    paths, grid, searched = {}, frozenset(), None
    if meta is None and config.meta_braider:
        from meta import MetaBraider

        agent = MetaBraider.load(config.meta_braider)
    else:
        agent = meta.agent if meta is not None else None
    if agent is not None:
        paths, grid, searched = agent.paths, agent.candidates.keys(), agent.architectures
    records = []
    if config.records:
        from tune.records import load_records

        records = load_records(config.records)
    return BraidFactory(
        paths, dict(config.braids), records, grid=grid, policy=config.braid_policy, architectures=searched
    )
