"""Create (or reuse) the project's virtual environment, keyed on the dependency spec.

The environment lives outside the checkout (``$BRAID_ENV_DIR``, default ``~/.cache/llm-braid``) so a fresh
clone reuses it, and a change to the dependencies in pyproject.toml makes a new one. The project itself is
not installed into it: the Makefile puts the checkout on PYTHONPATH, so one environment serves every clone.
Prints the environment's python path on stdout.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

EXTRAS = ("dev", "bench", "memory", "tools", "ray", "serve")
ROOT = Path(__file__).resolve().parent.parent


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return sorted(set(reqs))


def main() -> None:
    reqs = requirements()
    key = hashlib.sha256(json.dumps([sys.version_info[:2], reqs]).encode()).hexdigest()[:12]
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
    subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=sys.stderr)
    subprocess.run([*pip, *reqs], check=True, stdout=sys.stderr)
    (env / ".complete").write_text("\n".join(reqs) + "\n")


if __name__ == "__main__":
    main()
