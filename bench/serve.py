"""Serve overhead: the same request answered by (a) Coordinator.run in this process, (b) the HTTP API under
uvicorn in this process (no Ray), (c) the Ray Serve app (gateway -> multiplexed braid replica), all through the
same braid (the meta-braider's deterministic choice for one query, greedy). Target: (c) - (a) <= 15 ms at p50.

Memory and tools are off so every request does the same work; each mode runs sequentially after warm-up.

    python bench/serve.py [--requests 60] [--tokens 8] [--smoke-test]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import markdown_table, write_section  # noqa: E402

QUERY = "def add(a, b):"


def quantiles(xs: list[float]) -> tuple[float, float]:
    ordered = sorted(xs)
    return statistics.median(ordered) * 1000, ordered[max(0, int(0.95 * len(ordered)) - 1)] * 1000


def timed(fn, n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def setup(work: Path):
    from braid.meta import MetaBraider
    from braid.zoo import build_zoo, load_cards
    from serve.config import BraidDeploymentConfig, ServeConfig
    from tune.records import ModelFeatures

    zoo = build_zoo(tiny=True, progress=False)
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True)]
    torch.manual_seed(0)
    MetaBraider(pool, paths=zoo).save(work / "meta.pt")
    return ServeConfig(
        meta_braider=str(work / "meta.pt"), data_dir=str(work / "state"), api_key=None, use_memory=False,
        use_tools=False, port=18231, ingress_cpus=0.25,
        deployment=BraidDeploymentConfig(replica_cpus=1, max_replicas=1),
    )  # fmt: skip


def main(requests: int, tokens: int, smoke: bool) -> list[list[str]]:
    import openai
    import ray
    from ray import serve

    from serve.api import create_app
    from serve.app import run
    from serve.build import build_coordinator
    from serve.local import LocalServer

    work = Path(tempfile.mkdtemp())
    config = setup(work)
    coord = build_coordinator(config)
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": QUERY}],
        "max_tokens": tokens,
        "temperature": 0,
    }
    local = timed(lambda: coord.run(QUERY, max_new_tokens=tokens, temperature=0.0), requests)
    with LocalServer(create_app(lambda: coord, config)) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0)
        http = timed(lambda: client.chat.completions.create(**body), requests)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        run(config)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{config.port}/v1", api_key="none", max_retries=0)
        served = timed(lambda: client.chat.completions.create(**body), requests)
    finally:
        serve.shutdown()
        ray.shutdown()
    base50, base95 = quantiles(local)
    rows = []
    for name, xs in (("(a) Coordinator.run in-process", local), ("(b) HTTP API, uvicorn in-process", http),
                     ("(c) Ray Serve app", served)):  # fmt: skip
        p50, p95 = quantiles(xs)
        rows.append([name, f"{p50:.1f}", f"{p95:.1f}", f"{p50 - base50:+.1f}", f"{p95 - base95:+.1f}"])
    print(markdown_table(["mode", "p50 ms", "p95 ms", "overhead p50 ms", "overhead p95 ms"], rows))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    n = 5 if args.smoke_test else args.requests
    rows = main(n, args.tokens, args.smoke_test)
    if not args.smoke_test:
        overhead = float(rows[2][3])
        verdict = "met" if overhead <= 15 else "not met"
        body = markdown_table(["mode", "p50 ms", "p95 ms", "overhead p50 ms", "overhead p95 ms"], rows)
        body += (
            f"\n\n{n} sequential requests per mode after 3 warm-up ones; greedy, {args.tokens} new tokens, memory "
            f"and tools off, the meta-braider's choice for {QUERY!r} (the same braid in every mode). Overhead is "
            f"against (a). Target (c) - (a) <= 15 ms at p50: **{verdict}** ({overhead:+.1f} ms)."
        )
        cmd = f"python bench/serve.py --requests {n} --tokens {args.tokens}"
        write_section("serve", "Serve overhead (bench/serve.py)", cmd, body)
