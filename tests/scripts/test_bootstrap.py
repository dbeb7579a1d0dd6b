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
    return bootstrap.parse_lock(bootstrap.lock_text())  # raises unless every lock line is name==version


def test_parse_lock_reads_pins_and_refuses_other_lines(bootstrap):
    assert bootstrap.parse_lock("# header\n\nPyYAML==6.0.3\ntyping_extensions==4.15.0\n") == {
        "pyyaml": "6.0.3",
        "typing-extensions": "4.15.0",
    }
    for bad in ("torch>=2.6", "torch==", "==2.6", "torch==2==3"):
        with pytest.raises(ValueError, match="not name==version"):
            bootstrap.parse_lock(bad)


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
