"""Create (or reuse) the project's virtual environment, keyed on the dependency spec.

The environment lives outside the checkout (``$BRAID_ENV_DIR``, default ``~/.cache/llm-braid``) so a fresh
clone reuses it, and a change to the dependencies in pyproject.toml or requirements.lock makes a new one. The
project itself is not installed into it: the Makefile puts the checkout on PYTHONPATH, so one environment
serves every clone. Prints the environment's python path on stdout.

requirements.lock pins every package of a full resolve (transitive ones too) and is passed to pip as
constraints, so a fresh machine gets the versions the tests passed with, not whatever was released since.
``python scripts/bootstrap.py --lock`` (``make lock``) re-resolves pyproject's ranges to the newest
releases and rewrites it.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

EXTRAS = ("dev", "bench", "memory", "tools", "ray", "serve")
ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
LOCK_HEADER = (
    "# Every package of a full resolve of pyproject.toml's dependencies and extras ({extras}),\n"
    "# pinned. scripts/bootstrap.py passes this file to pip as constraints. Regenerate: make lock\n"
    "# Resolved with CPython {python} on {platform}.\n"
)


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return sorted(set(reqs))


def lock_text() -> str:
    return LOCK.read_text() if LOCK.exists() else ""


def parse_lock(text: str) -> dict[str, str]:
    """Canonical name -> pinned version; comments and blank lines skipped, any other line is an error."""
    pins = {}
    for line in (raw.strip() for raw in text.splitlines()):
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            if not sep or not name or not version or "==" in version:
                raise ValueError(f"requirements.lock: {line!r} is not name==version")
            pins[canonical(name)] = version
    return pins


def env_key(reqs: list[str], lock: str) -> str:
    return hashlib.sha256(json.dumps([sys.version_info[:2], reqs, lock]).encode()).hexdigest()[:12]


def main() -> None:
    reqs = requirements()
    key = env_key(reqs, lock_text())
    base = Path(os.environ.get("BRAID_ENV_DIR", Path.home() / ".cache" / "llm-braid"))
    env = base / f"venv-{key}"
    python = env / "bin" / "python"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait, then reuse it
        if not (env / ".complete").exists():
            build(env, python, reqs)
    print(python)


def build(env: Path, python: Path, reqs: list[str]) -> None:
    shutil.rmtree(env, ignore_errors=True)
    print(f"bootstrap: creating {env} ({len(reqs)} requirements)", file=sys.stderr)
    venv.create(env, with_pip=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    constraints = ["--constraint", str(LOCK)] if LOCK.exists() else []
    subprocess.run([*pip, *constraints, "--upgrade", "pip"], check=True, stdout=sys.stderr)
    subprocess.run([*pip, *constraints, *reqs], check=True, stdout=sys.stderr)
    (env / ".complete").write_text("\n".join(reqs) + "\n")


def resolve(reqs: list[str]) -> dict[str, str]:
    """Package name -> version that pip would install now on a bare interpreter like this one."""
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--dry-run"]
    cmd += ["--ignore-installed", "--report", "-", *reqs]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503, so pins match pip's names however spelled


def write_lock() -> None:
    import platform
    from importlib.metadata import version

    pins = resolve(requirements()) | {"pip": version("pip")}  # the installer too: its resolver changes
    header = LOCK_HEADER.format(
        extras=", ".join(EXTRAS),
        python=platform.python_version(),
        platform=f"{sys.platform} {platform.machine()}",
    )
    LOCK.write_text(header + "".join(f"{name}=={pins[name]}\n" for name in sorted(pins)))
    print(f"bootstrap: pinned {len(pins)} packages in {LOCK.name}", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:] == ["--lock"]:
        write_lock()
    elif sys.argv[1:]:
        sys.exit(f"bootstrap: unknown arguments {sys.argv[1:]}; usage: bootstrap.py [--lock]")
    else:
        main()
