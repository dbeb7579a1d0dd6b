"""``braid memory``: init, stats, search, export and import (JSONL)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The memory store: conversations, entities, documents.", no_args_is_help=True)
console = Console()
DataDir = typer.Option(None, help="default: $BRAID_DATA_DIR or ~/.local/share/llm-braid")
EmbedderOpt = typer.Option(None, help="minilm (default) or hashing")


def _manager(data_dir: Path | None, embedder: str | None):
    from memory import MemoryManager

    return MemoryManager(data_dir=data_dir, embedder=embedder)


@app.command()
def init(data_dir: Path | None = DataDir, embedder: str | None = EmbedderOpt) -> None:
    """Create the store and its schema."""
    mm = _manager(data_dir, embedder)
    console.print(f"memory ready: {getattr(mm.store, 'path', mm.store)}")


@app.command()
def stats(data_dir: Path | None = DataDir, embedder: str | None = EmbedderOpt) -> None:
    """Count what the store holds."""
    table = Table(title="memory")
    table.add_column("records")
    table.add_column("count", justify="right")
    for name, count in _manager(data_dir, embedder).stats().items():
        table.add_row(name, f"{count:,}")
    console.print(table)


@app.command()
def search(
    query: str,
    kind: str = typer.Option("message", help="message or document"),
    top_k: int = 5,
    data_dir: Path | None = DataDir,
    embedder: str | None = EmbedderOpt,
) -> None:
    """Semantic search over messages or documents."""
    if kind not in ("message", "document"):
        raise typer.BadParameter(f"kind must be 'message' or 'document', not {kind!r}")
    mm = _manager(data_dir, embedder)
    hits = (
        mm.semantic_search_messages(query, top_k)
        if kind == "message"
        else mm.semantic_search_documents(query, top_k)
    )
    table = Table(title=f"{kind}s like {query!r}")
    for col in ("score", "text", "where"):
        table.add_column(col)
    for h in hits:
        where = h["metadata"].get("conversation_id") or h["metadata"].get("url", "")
        table.add_row(f"{h['score']:.3f}", h["text"][:80], where)
    console.print(table)


@app.command("export")
def export_(path: Path, data_dir: Path | None = DataDir, embedder: str | None = EmbedderOpt) -> None:
    """Write every record to a JSONL file."""
    n = 0
    with path.open("w") as f:
        for record in _manager(data_dir, embedder).export_records():
            f.write(json.dumps(record) + "\n")
            n += 1
    console.print(f"exported {n} records to {path}")


@app.command("import")
def import_(path: Path, data_dir: Path | None = DataDir, embedder: str | None = EmbedderOpt) -> None:
    """Replay a JSONL export (idempotent: ids are kept)."""
    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist")
    records = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    console.print(f"imported {_manager(data_dir, embedder).import_records(records)} records")
