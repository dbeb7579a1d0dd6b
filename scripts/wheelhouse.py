"""Download wheels for a machine with no internet (an air-gapped GPU node) at requirements.lock's versions.

The node has its own Python (often another version) and many packages already, so this fetches only the
packages named, for the given Python version on manylinux x86_64, without their dependencies: name each one
the node lacks. Ray's wheel loses ray/jars (32 of its 79 MB; only Java workers use them) unless --keep-java,
so a wheelhouse with Ray fits a 64 MiB transfer. On the node:
``pip install --no-index --no-deps --target /tmp/site .whl/*.whl`` then ``PYTHONPATH=/tmp/site``.

    python scripts/wheelhouse.py --python-version 3.12 --dest .whl pydantic pydantic-core ray
"""

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bootstrap import canonical, lock_text, parse_lock  # noqa: E402

PLATFORMS = ["manylinux1_x86_64", "manylinux2014_x86_64"] + [f"manylinux_2_{n}_x86_64" for n in range(17, 40)]
JAVA_PREFIX = "ray/jars/"


def pinned(names: list[str]) -> list[str]:
    """name==version for each name, from requirements.lock; unknown names are an error listing them all."""
    pins = parse_lock(lock_text())
    missing = [n for n in names if canonical(n) not in pins]
    if missing:
        raise SystemExit(f"wheelhouse: not in requirements.lock: {', '.join(missing)}")
    return [f"{n}=={pins[canonical(n)]}" for n in names]


def download(specs: list[str], python_version: str, dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps"]
    cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    cmd += ["-d", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run([*cmd, *specs], check=True)


def strip_java(wheel: Path) -> int:
    """Rewrite a Ray wheel without ray/jars (and their RECORD lines); returns the bytes saved."""
    before = wheel.stat().st_size
    stripped = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(stripped, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.startswith(JAVA_PREFIX):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if not line.startswith(JAVA_PREFIX)).encode()
            dst.writestr(info, data)
    stripped.replace(wheel)
    return before - wheel.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="+", help="distribution names, as in requirements.lock")
    parser.add_argument("--python-version", required=True, help="the node's Python, e.g. 3.12")
    parser.add_argument("--dest", type=Path, default=Path(".whl"))
    parser.add_argument("--keep-java", action="store_true", help="keep ray/jars in Ray's wheel")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    download(pinned(args.packages), args.python_version, args.dest)
    if not args.keep_java:
        for wheel in args.dest.glob("ray-*.whl"):
            print(f"{wheel.name}: dropped ray/jars, {strip_java(wheel) / 2**20:.1f} MiB saved")
    wheels = sorted(args.dest.glob("*.whl"))
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:8.1f} MiB  {wheel.name}")
    print(f"{sum(w.stat().st_size for w in wheels) / 2**20:8.1f} MiB  total in {args.dest}")


if __name__ == "__main__":
    main()
