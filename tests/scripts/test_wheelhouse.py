"""scripts/wheelhouse.py, offline: lock versions by name, and Ray's wheel without its Java jars."""

from __future__ import annotations

import zipfile

import pytest

from tests.scripts.conftest import load_script


@pytest.fixture(scope="module")
def wheelhouse():
    return load_script("wheelhouse")


def test_pinned_reads_the_lock_and_names_every_unknown_package(wheelhouse):
    specs = wheelhouse.pinned(["ray", "Pydantic_Core"])
    assert specs[0].startswith("ray==2.") and specs[1].startswith("Pydantic_Core==2.")
    with pytest.raises(SystemExit, match="nosuch, alsonot"):
        wheelhouse.pinned(["nosuch", "ray", "alsonot"])


def test_strip_java_drops_the_jars_and_their_record_lines(wheelhouse, tmp_path):
    wheel = tmp_path / "ray-9.9.9-cp312-cp312-manylinux2014_x86_64.whl"
    record = "ray/__init__.py,sha256=a,3\nray/jars/ray_dist.jar,sha256=b,2000\nray-9.9.9.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ray/__init__.py", "x=1")
        zf.writestr("ray/jars/ray_dist.jar", bytes(range(256)) * 8)
        zf.writestr("ray-9.9.9.dist-info/RECORD", record)
    saved = wheelhouse.strip_java(wheel)
    with zipfile.ZipFile(wheel) as zf:
        assert zf.namelist() == ["ray/__init__.py", "ray-9.9.9.dist-info/RECORD"]
        assert zf.read("ray/__init__.py") == b"x=1"
        assert "jars" not in zf.read("ray-9.9.9.dist-info/RECORD").decode()
    assert saved > 0
