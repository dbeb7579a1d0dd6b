"""One root for every default path: $BRAID_CACHE (or ./.env), else ~/.cache/llm-braid."""

from pathlib import Path

from braid import paths


def test_braid_cache_moves_every_default(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAID_CACHE", str(tmp_path))
    from braid.zoo.build import zoo_dir
    from serve.config import ServeConfig
    from tune.sweep import SweepConfig

    assert zoo_dir(tiny=True).parent == tmp_path
    assert Path(SweepConfig(name="x").storage_path) == tmp_path / "sweeps"
    assert paths.demo_dir() == tmp_path / "demo"
    cfg = ServeConfig.from_yaml(Path(__file__).resolve().parents[2] / "serve.yaml")  # the repo's own file
    assert cfg.meta_braider == str(tmp_path / "demo" / "meta-braider.pt")
    assert cfg.records == str(tmp_path / "demo" / "sweep.records.jsonl")


def test_meta_reads_the_demos_agent_until_one_is_trained(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAID_CACHE", str(tmp_path))
    assert paths.default_agent() == tmp_path / "meta-braider.pt"  # nothing yet: where `meta train` writes
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "meta-braider.pt").write_bytes(b"x")
    assert paths.default_agent() == tmp_path / "demo" / "meta-braider.pt"  # after `make demo`
    (tmp_path / "meta-braider.pt").write_bytes(b"x")
    assert paths.default_agent() == tmp_path / "meta-braider.pt"  # your own wins


def test_dotenv_and_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("BRAID_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.cache_dir() == Path.home() / ".cache" / "llm-braid"
    (tmp_path / ".env").write_text("# settings\nexport BRAID_CACHE='/srv/braid'\nOTHER=1\n")
    assert paths.cache_dir() == Path("/srv/braid")
    assert paths.expand("$BRAID_CACHE/demo/x.pt") == "/srv/braid/demo/x.pt"
