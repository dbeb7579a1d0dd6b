import json

from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def test_memory_cli_round_trip(tmp_path, monkeypatch):
    from memory import HashingEmbedder, MemoryManager

    src, dst = tmp_path / "a", tmp_path / "b"
    mm = MemoryManager(data_dir=src, embedder=HashingEmbedder())
    conv = mm.create_conversation(title="chat")
    mm.add_message(conv, "user", "the braid reads the text")
    mm.create_entity("Python", "language")
    mm.create_entity("Django", "framework")
    mm.create_entity_relationship("Python", "Django", "HAS_FRAMEWORK")
    mm.store_document("https://example.org", "Example", "a document about braids")
    mm.close()
    common = ["--embedder", "hashing"]
    out = runner.invoke(app, ["memory", "export", str(tmp_path / "x.jsonl"), "--data-dir", str(src), *common])
    assert out.exit_code == 0, out.output
    kinds = [json.loads(line)["record"] for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert kinds == ["conversation", "message", "entity", "entity", "relationship", "document"]
    for _ in range(2):  # importing twice changes nothing
        out = runner.invoke(
            app, ["memory", "import", str(tmp_path / "x.jsonl"), "--data-dir", str(dst), *common]
        )
        assert out.exit_code == 0, out.output
    stats = runner.invoke(app, ["memory", "stats", "--data-dir", str(dst), *common])
    assert "messages" in stats.stdout and "relationships" in stats.stdout
    copy = MemoryManager(data_dir=dst, embedder=HashingEmbedder())
    assert copy.stats() == {
        "conversations": 1,
        "messages": 1,
        "entities": 2,
        "relationships": 1,
        "documents": 1,
        "chunks": 1,
    }
    found = runner.invoke(app, ["memory", "search", "braid text", "--data-dir", str(dst), *common])
    assert found.exit_code == 0 and "the braid reads" in found.stdout
    bad = runner.invoke(app, ["memory", "search", "x", "--kind", "entity", "--data-dir", str(dst), *common])
    assert bad.exit_code == 2
