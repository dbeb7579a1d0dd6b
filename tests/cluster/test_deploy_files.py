"""cluster.yaml against Ray's own launcher schema; docker-compose.yml against the Compose specification's JSON
schema (tests/cluster/schemas/compose_spec.json, from docker-compose 1.29.2's wheel, Apache-2.0), and with
`docker compose config` where a Docker client exists."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def launcher_check(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))  # fills Ray's provider defaults, as `ray up` does
    validate_config(prepared)
    return prepared


def test_cluster_yaml_is_a_valid_launcher_config():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    prepared = launcher_check(config)
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] == "head" and "gpu_worker" in types
    assert types["gpu_worker"]["node_config"]["InstanceType"].startswith(("g", "p"))  # a GPU instance
    setup = " ".join(prepared["setup_commands"])
    mounted = {v: k for k, v in prepared["file_mounts"].items()}
    assert "pip install" in setup and mounted["."] in setup  # installs this checkout
    assert f"--constraint {mounted['.']}/requirements.lock" in setup  # pinned like the Dockerfile


def test_launcher_validation_rejects_a_broken_cluster_yaml():
    from jsonschema import ValidationError

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["min_wrokers"] = 1
    with pytest.raises(ValidationError, match="min_wrokers"):
        launcher_check(config)


def compose_schema_check(compose: dict) -> None:
    import json

    import jsonschema

    schema = json.loads((ROOT / "tests" / "cluster" / "schemas" / "compose_spec.json").read_text())
    jsonschema.validate(compose, schema, cls=jsonschema.Draft201909Validator)


def test_compose_file_matches_the_compose_specification():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose_schema_check(compose)
    broken = copy.deepcopy(compose)
    broken["services"]["ray-head"]["shm_sise"] = "8gb"
    with pytest.raises(Exception, match="shm_sise"):
        compose_schema_check(broken)


def test_compose_file_reserves_gpus_requires_a_key_and_prepares_what_serve_reads():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    gpu = compose["services"]["ray-gpu-worker"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    serve = compose["services"]["braid-serve"]
    assert serve["environment"]["BRAID_API_KEY"].startswith("${BRAID_API_KEY:?")  # no key: compose says so
    command = " ".join(serve["command"])
    assert "braid demo --quick --prepare" in command and "$$BRAID_CACHE/demo/meta-braider.pt" in command
    serve_yaml = (ROOT / "serve.yaml").read_text()
    assert "$BRAID_CACHE/demo/meta-braider.pt" in serve_yaml  # the file the prepare step writes


def test_compose_file_defines_head_workers_and_neo4j():
    text = (ROOT / "docker-compose.yml").read_text()
    if _has_compose():
        out = subprocess.run(["docker", "compose", "-f", "-", "config"], input=text, capture_output=True,
                             text=True, cwd=ROOT, env={**os.environ, "BRAID_API_KEY": "k"})  # fmt: skip
        assert out.returncode == 0, out.stderr
        text = out.stdout
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert {"ray-head", "ray-worker", "neo4j", "braid-serve"} <= set(services)
    assert "braid serve --config serve.yaml" in str(services["braid-serve"]["command"])
    head, worker = services["ray-head"], services["ray-worker"]
    assert "--head" in str(head["command"]) and "ray-head:6379" in str(worker["command"])
    for svc in (head, worker):
        assert _bytes(svc["shm_size"]) >= 2**30  # Ray's object store lives in /dev/shm
        assert "build" in svc or "image" in svc
    for name, svc in services.items():
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for volume in svc.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            assert source in compose.get("volumes", {}) or source.startswith(("/", ".")), source
    assert (ROOT / "Dockerfile").exists()


def _has_compose() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def _bytes(size: str | int) -> int:
    if isinstance(size, int):
        return size
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    size = size.lower().removesuffix("b")
    return int(float(size[:-1]) * units[size[-1]]) if size[-1] in units else int(size)


def test_serve_yaml_is_a_valid_serve_config_with_typed_args():
    from ray.serve.schema import ServeDeploySchema

    from serve.config import ServeConfig

    raw = yaml.safe_load((ROOT / "serve.yaml").read_text())
    schema = ServeDeploySchema.model_validate(raw) if hasattr(ServeDeploySchema, "model_validate") else (
        ServeDeploySchema.parse_obj(raw)
    )  # fmt: skip
    (app,) = schema.applications
    assert app.import_path == "serve.app:app_builder"
    config = ServeConfig.from_yaml(ROOT / "serve.yaml")  # what `braid serve --config serve.yaml` reads
    assert config == ServeConfig.model_validate(app.args) and config.port == raw["http_options"]["port"]
    assert config.deployment.max_replicas >= config.deployment.min_replicas


def test_serve_builds_the_app_from_the_yaml_args_through_the_typed_builder():
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.deployment import Application

    from serve.app import app_builder

    (app,) = yaml.safe_load((ROOT / "serve.yaml").read_text())["applications"]
    assert isinstance(call_user_app_builder_with_args_if_necessary(app_builder, app["args"]), Application)
    with pytest.raises(Exception, match="max_replicas"):
        call_user_app_builder_with_args_if_necessary(
            app_builder, {**app["args"], "deployment": {"max_replicas": 0}}
        )
