"""Serve overhead: the same request answered by (a) Coordinator.run in this process, (b) the HTTP API under
uvicorn in this process (no Ray), (c) the Ray Serve app (gateway -> multiplexed braid replica), (d) the Ray
Serve app with colocated braids (the gateway replica generates), (e) the same colocated app addressed on its
gateway replica's own port (Ray Serve direct ingress: no proxy hop), (f) the default app on its gateway
replica's own port, all through the same braid, in interleaved rounds (the meta-braider's deterministic choice
for one query, greedy). Target: <= 15 ms over (a) at p50.

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
HEADER = ["mode", "p50 ms", "p95 ms", "overhead p50 ms", "overhead p95 ms", "coordinator total p50 ms",
          "of which generate p50 ms"]  # fmt: skip


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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(work: Path):
    from braid.zoo import build_zoo, load_cards
    from meta import MetaBraider
    from serve.config import BraidDeploymentConfig, ServeConfig
    from tune.records import ModelFeatures

    zoo = build_zoo(tiny=True, progress=False)
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True)]
    torch.manual_seed(0)
    MetaBraider(pool, paths=zoo).save(work / "meta.pt")
    return ServeConfig(
        meta_braider=str(work / "meta.pt"), data_dir=str(work / "state"), api_key=None, use_memory=False,
        use_tools=False, port=free_port(), ingress_cpus=0.25,
        deployment=BraidDeploymentConfig(replica_cpus=1, max_replicas=1),
    )  # fmt: skip


def main(requests: int, tokens: int) -> tuple[list[list[str]], dict[str, float]]:
    import ray
    from ray import serve

    from serve.api import create_app
    from serve.app import app_builder, direct_urls, enable_direct_ingress, run
    from serve.build import build_coordinator
    from serve.local import LocalServer

    torch.set_num_threads(1)  # as in the Serve replica (replica_cpus=1), so every mode computes alike
    config = setup(Path(tempfile.mkdtemp()))
    coord = build_coordinator(config)
    # logical CPUs: both apps' replicas are placed side by side on this machine's 2 cores, one busy at a time
    enable_direct_ingress()  # the proxy still serves (c) and (d); (e) and (f) skip it
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        run(config)
        colocated = config.model_copy(
            update={"deployment": config.deployment.model_copy(update={"colocate": True})}
        )
        serve.run(app_builder(colocated), name="colocated", route_prefix="/colocated")
        proxy = f"http://127.0.0.1:{config.port}"
        with LocalServer(create_app(coord, config)) as srv:
            bases = {
                "(b) HTTP API, uvicorn in-process": srv.url,
                "(c) Ray Serve app": proxy,
                "(d) Ray Serve app, colocated braids": proxy + "/colocated",
                "(e) Ray Serve app, colocated braids, direct ingress": direct_urls(colocated, "colocated")[0],
                "(f) Ray Serve app, direct ingress": direct_urls(config, "braid")[0],
            }
            times, stages = interleaved(http_modes(coord, bases, tokens), requests)
            floors = {
                "uvicorn": srv.url,
                "Ray Serve": proxy,
                "direct": bases["(e) Ray Serve app, colocated braids, direct ingress"],
            }
            floor = transport_floors(floors, requests)
    finally:
        serve.shutdown()
        ray.shutdown()
    rows = table_rows(times, stages)
    print(markdown_table(HEADER, rows))
    return rows, floor


def http_modes(coord, bases: dict[str, str], tokens: int) -> dict:
    """(a) the coordinator called in-process, then one openai client per HTTP base URL, same request each."""
    import openai

    body = {"model": "auto", "messages": [{"role": "user", "content": QUERY}], "max_tokens": tokens,
            "temperature": 0}  # fmt: skip
    modes = {
        "(a) Coordinator.run in-process": lambda: (
            coord.run(QUERY, max_new_tokens=tokens, temperature=0.0).timings
        )
    }
    for name, base in bases.items():
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
        modes[name] = lambda c=client: _timings(c.chat.completions.create(**body))
    return modes


def transport_floors(bases: dict[str, str], requests: int) -> dict[str, float]:
    """p50 ms of an empty request (GET /healthz) on each path: the transport alone."""
    import httpx2 as httpx

    with httpx.Client() as http:
        return {
            name: quantiles(timed(lambda b=base: http.get(b + "/healthz"), requests, 5))[0]
            for name, base in bases.items()
        }


def table_rows(times: dict, stages: dict) -> list[list[str]]:
    base50, base95 = quantiles(times["(a) Coordinator.run in-process"])
    rows = []
    for name, xs in times.items():
        p50, p95 = quantiles(xs)
        inner = [statistics.median(t[k] for t in stages[name]) for k in ("total", "generate")]
        rows.append([name, f"{p50:.1f}", f"{p95:.1f}", f"{p50 - base50:+.1f}", f"{p95 - base95:+.1f}",
                     f"{inner[0]:.1f}", f"{inner[1]:.1f}"])  # fmt: skip
    return rows


def _timings(reply) -> dict:
    return reply.model_extra["braid"]["timings"]


def interleaved(modes: dict, n: int, warmup: int = 5) -> tuple[dict, dict]:
    """Round-robin over the modes, so drift on the machine touches every mode alike; wall seconds and the
    coordinator's own stage timings per request."""
    for fn in modes.values():
        timed(fn, 0, warmup)
    walls: dict[str, list[float]] = {name: [] for name in modes}
    stages: dict[str, list[dict]] = {name: [] for name in modes}
    for _ in range(n):
        for name, fn in modes.items():
            start = time.perf_counter()
            stages[name].append(fn())
            walls[name].append(time.perf_counter() - start)
    return walls, stages


def report(rows: list[list[str]], floor: dict[str, float], n: int, tokens: int) -> None:
    """Write the table, the reading and the verdict into BENCHMARKS.md."""
    over = {row[0][:3]: float(row[3]) for row in rows}
    verdict = {True: "met", False: "not met"}
    body = markdown_table(HEADER, rows)
    body += (
        f"\n\n{n} sequential requests per mode after 5 warm-up ones, the modes interleaved round-robin; "
        f"greedy, {tokens} new tokens, memory and tools off, the meta-braider's choice for {QUERY!r} "
        "(the same braid in every mode), torch on 1 thread everywhere as in the replica. Overhead is against "
        "(a). (c) and (f) are the default app: a gateway, then a braid replica routed by braid key; (d) and (e) "
        "colocate the braids in the gateway's replicas (`deployment.colocate: true`). (c) and (d) enter through "
        "Ray Serve's HTTP proxy; (e) and (f) address a gateway replica's own port (`direct_ingress: true`, Ray "
        "Serve's direct ingress: one hop fewer). Target <= 15 ms at p50: "
        + "; ".join(f"{k} **{verdict[v <= 15]}** ({v:+.1f} ms)" for k, v in over.items() if k >= "(c")
        + ". The last two columns are the coordinator's own timings: in (c) and (f) its generate includes the "
        "hop from the gateway to the braid replica, and wall minus coordinator total is the path from the "
        "client to the gateway. This machine has 2 cores for the driver, Ray's own processes, the proxy, the "
        "gateways and the braid replica. Transport floor, an empty request (GET /healthz, p50): "
        f"{floor['Ray Serve']:.1f} ms through Ray Serve's proxy, {floor['direct']:.1f} ms direct to a gateway "
        f"replica, {floor['uvicorn']:.1f} ms through uvicorn."
    )
    cmd = f"python bench/serve.py --requests {n} --tokens {tokens}"
    write_section("serve", "Serve overhead (bench/serve.py)", cmd, body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    n = 5 if args.smoke_test else args.requests
    rows, floor = main(n, args.tokens)
    if not args.smoke_test:
        report(rows, floor, n, args.tokens)
