"""Serve settings: one frozen pydantic model, loadable from YAML (``braid serve --config serve.yaml``).

Safe by default: without an API key the endpoint binds to loopback only; request bodies, generated tokens and
request time are capped.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from braid.paths import setting
from serve.braids import BraidPolicy
from tools.config import ToolsConfig
from tools.safety import is_loopback


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BraidDeploymentConfig(_Frozen):
    """The braid deployment: one replica hosts one braid (``braids_per_replica`` > 1 keeps more warm)."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(2.0, gt=0, description="autoscaling target per replica")
    braids_per_replica: int = Field(1, ge=1, description="built braids a replica keeps (LRU)")
    replica_cpus: float = Field(1.0, gt=0, description="the replica's placement-group bundle")
    replica_gpus: float = Field(0.0, ge=0)
    max_ongoing_requests: int = Field(8, ge=1)
    colocate: bool = Field(
        False,
        description="host the braids in the gateway's own replicas, autoscaled with these settings: one Ray "
        "Serve hop fewer per request, but no routing of a request to the replica that holds its braid",
    )

    @model_validator(mode="after")
    def _replicas(self) -> BraidDeploymentConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas})")
        return self


class FederationConfig(_Frozen):
    """Gateway replicas that learn from their own feedback and merge (``meta.federated``) instead of sharing
    one state file: for replicas on different nodes, which share no disk."""

    sync_every: int = Field(8, ge=1, description="feedback updates a replica makes before it merges")
    staleness: int = Field(4, ge=0, description="merges a replica's base may be behind and still be added")
    refresh_s: float = Field(
        10.0, gt=0, description="a replica takes the others' merged updates at least this often (seconds)"
    )
    merger: str = Field("braid-meta-merger", min_length=1, description="the merger actor's name")
    path: str | None = Field(
        None, description="the merged state's file, on storage every node reaches (default: the state dir)"
    )


class ServeConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = Field(
        default_factory=lambda: setting("BRAID_API_KEY"),
        validate_default=True,
        description="required as 'Authorization: Bearer <key>' when set (default: $BRAID_API_KEY)",
    )
    allow_open: bool = Field(False, description="allow binding beyond loopback without an API key")
    meta_braider: str | None = Field(None, description="meta-braider checkpoint (braid meta train)")
    records: str | None = Field(
        None, description="sweep records whose trial checkpoints give trained fusion weights for decisions"
    )
    braids: dict[str, str] = Field(
        default_factory=dict, description="pinned braids: model name -> save_pretrained directory"
    )
    default_model: str = Field("auto", description="'auto' (the meta-braider decides) or a pinned braid")
    braid_policy: BraidPolicy = Field(
        default_factory=BraidPolicy, description="which braid structures clients may name, and their limits"
    )
    data_dir: str | None = Field(None, description="memory, response log and agent state; default: data dir")
    use_memory: bool = True
    use_tools: bool = True
    personalize: bool = Field(
        False,
        description="a request that names a `user` gets decisions with that user's own correction, and its "
        "ratings train that correction instead of the shared policy (meta.personal)",
    )
    federated: FederationConfig | None = Field(
        None, description="replicas merge their feedback through a merger actor (meta.federated)"
    )
    tools: ToolsConfig = ToolsConfig()
    max_request_bytes: int = Field(256_000, gt=0)
    max_tokens_limit: int = Field(256, ge=1, description="cap on max_tokens per request")
    request_timeout_s: float = Field(120.0, gt=0)
    deployment: BraidDeploymentConfig = BraidDeploymentConfig()
    ingress_cpus: float = Field(0.5, gt=0)
    direct_ingress: bool = Field(
        False,
        description="each gateway replica also answers on its own port (Ray Serve direct ingress, ports "
        "30000 up), skipping the proxy hop; needs Ray started with RAY_SERVE_ENABLE_DIRECT_INGRESS=1, which "
        "`braid serve` sets when it starts Ray itself",
    )

    @field_validator("api_key")
    @classmethod
    def _no_key_is_none(cls, v: str | None) -> str | None:
        """One rule for "no key" wherever it comes from (YAML, env, flags): empty or blank is None, so auth
        and the loopback-only rule agree (an empty YAML key once switched both off)."""
        return v.strip() or None if v is not None else None

    @field_validator("meta_braider", "records", "data_dir")
    @classmethod
    def _expand(cls, v: str | None) -> str | None:
        from braid.paths import expand

        return None if v is None else expand(v)

    @field_validator("braids")
    @classmethod
    def _expand_braids(cls, v: dict[str, str]) -> dict[str, str]:
        if bad := [name for name in v if "|" in name or name == "auto"]:
            raise ValueError(f"pinned braid names may not be 'auto' or contain '|': {bad}")
        return {name: os.path.expanduser(path) for name, path in v.items()}

    @model_validator(mode="after")
    def _rules(self) -> ServeConfig:
        if self.api_key is None and not self.allow_open and not is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} is not loopback and no api_key is set: set api_key (or $BRAID_API_KEY), "
                "or allow_open: true to serve without auth"
            )
        if self.meta_braider is None and not self.braids:
            raise ValueError("nothing to serve: give meta_braider (a checkpoint) and/or braids (pinned)")
        if self.federated is not None and self.meta_braider is None:
            raise ValueError("federated learning needs a meta_braider to learn")
        if self.default_model == "auto" and self.meta_braider is None:
            raise ValueError("default_model 'auto' needs a meta_braider; name a pinned braid instead")
        if self.default_model != "auto" and self.default_model not in self.braids:
            raise ValueError(
                f"default_model {self.default_model!r} is not a pinned braid {sorted(self.braids)}"
            )
        return self

    @property
    def state_dir(self) -> Path:
        from memory.manager import default_data_dir

        return Path(self.data_dir) if self.data_dir else default_data_dir()

    @classmethod
    def from_yaml(cls, path: str | Path) -> ServeConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        if "applications" in data:  # a Ray Serve config file: our app's args, served where http_options say
            args = dict(data["applications"][0].get("args") or {})
            http = data.get("http_options") or {}
            args.setdefault("host", http.get("host", "127.0.0.1"))
            args.setdefault("port", http.get("port", 8000))
            data = args
        return cls.model_validate(data)
