"""requirements.lock: a fresh machine installs exactly the versions the tests ran with."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.scripts.conftest import SCRIPTS, load_script


@pytest.fixture(scope="module")
def bootstrap():
    return load_script("bootstrap")


@pytest.fixture(scope="module")
def pins(bootstrap) -> dict[str, str]:
    lines = [line.strip() for line in bootstrap.lock_text().splitlines()]
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(pair) == 2 for pair in pairs), "every lock line is name==version"
    return {bootstrap.canonical(name): pinned for name, pinned in pairs}


def test_lock_pins_every_requirement_inside_its_range(bootstrap, pins):
    for line in bootstrap.requirements():
        req = Requirement(line)
        name = bootstrap.canonical(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} outside {req}"


def test_environment_is_the_lock(bootstrap, pins):
    """Every locked package that is installed has the locked version, and every requirement is installed
    (a platform may skip locked packages it does not need, such as the nvidia-* wheels off Linux)."""
    if not (Path(sys.prefix) / ".complete").exists():
        pytest.skip("not running in an environment that scripts/bootstrap.py built")
    installed = {}
    for name in pins:
        try:
            installed[name] = version(name)
        except PackageNotFoundError:
            installed[name] = None
    assert {n: v for n, v in installed.items() if v is not None and v != pins[n]} == {}
    required = {bootstrap.canonical(Requirement(line).name) for line in bootstrap.requirements()}
    assert sorted(n for n in required if installed[n] is None) == []


def test_env_key_follows_the_lock(bootstrap):
    reqs = bootstrap.requirements()
    assert bootstrap.env_key(reqs, "torch==1\n") != bootstrap.env_key(reqs, "torch==2\n")
    assert bootstrap.env_key(reqs, "torch==1\n") == bootstrap.env_key(reqs, "torch==1\n")


def test_unknown_argument_is_refused():
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "bootstrap.py"), "--frobnicate"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "--frobnicate" in done.stderr and "--lock" in done.stderr
