"""Memory store: insert throughput and semantic-search latency at 10k and 100k messages.

Embeddings come from the hashing embedder at MiniLM's width (384), so the numbers measure the store; the
MiniLM embedding cost per message is reported on its own line.

    python bench/memory.py [--smoke-test]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import markdown_table, write_section  # noqa: E402
from memory import HashingEmbedder, MemoryManager, SQLiteStore  # noqa: E402

WORDS = [
    "braid",
    "anchor",
    "member",
    "fusion",
    "layer",
    "token",
    "cache",
    "attention",
    "router",
    "gate",
    "train",
    "text",
    "model",
    "graph",
    "memory",
    "search",
]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(12))


def measure(backend: str, store, sizes: list[int], searches: int) -> list[list[str]]:
    """Insert up to each size in turn, then time top-10 searches. p95 targets: 100 ms SQLite, 50 ms Neo4j."""
    rng = random.Random(0)
    target = 100 if backend == "sqlite" else 50
    mm = MemoryManager(store, embedder=HashingEmbedder(dim=384))
    conv = mm.create_conversation()
    rows, done = [], 0
    for size in sizes:
        start = time.perf_counter()
        for _ in range(size - done):
            mm.add_message(conv, "user", sentence(rng))
        rate = (size - done) / (time.perf_counter() - start)
        done = size
        mm.semantic_search_messages("warm up", top_k=10)  # SQLite builds its in-memory matrix here
        times = []
        for _ in range(searches):
            t = time.perf_counter()
            mm.semantic_search_messages(sentence(rng), top_k=10)
            times.append((time.perf_counter() - t) * 1e3)
        p50, p95 = statistics.median(times), statistics.quantiles(times, n=20)[18]
        row = [
            backend,
            f"{size:,}",
            f"{rate:,.0f}",
            f"{p50:.1f}",
            f"{p95:.1f}",
            str(target),
            "yes" if p95 <= target else "no",
        ]
        rows.append(row)
        print(" | ".join(row), flush=True)
    return rows


def minilm_ms_per_message(n: int = 256) -> float:
    from memory import MiniLMEmbedder

    emb = MiniLMEmbedder()
    texts = [sentence(random.Random(i)) for i in range(n)]
    emb.embed(texts[:8])
    start = time.perf_counter()
    emb.embed(texts)
    return (time.perf_counter() - start) * 1e3 / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    sizes, searches = ([200, 500], 20) if args.smoke_test else ([10_000, 100_000], 200)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure("sqlite", SQLiteStore(Path(tmp) / "m.sqlite"), sizes, searches)
        if not args.smoke_test:
            from memory.neo4j_server import Neo4jServer
            from memory.neo4j_store import Neo4jClient

            with Neo4jServer(Path(tmp) / "neo4j") as server:
                rows += measure(
                    "neo4j (vector index)", Neo4jClient(server.uri, *server.auth).store, sizes, searches
                )
    table = markdown_table(
        ["backend", "messages", "inserts/s", "search p50 ms", "search p95 ms", "p95 target ms", "within"],
        rows,
    )
    print(table)
    if not args.smoke_test:
        body = (
            f"One conversation; each insert is its own transaction (embedding included); {searches} searches "
            "(top 10) after a warm-up that loads the vectors. Hashing embedder at width 384. MiniLM embedding "
            f"cost on this CPU: {minilm_ms_per_message():.1f} ms per message (batches of 64), on top of inserts. "
            "The Neo4j rows come with the Neo4j backend.\n\n" + table
        )
        write_section("memory", "Memory store (bench/memory.py)", "python bench/memory.py", body)


if __name__ == "__main__":
    main()
