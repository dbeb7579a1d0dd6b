"""``make demo``: the whole system on the embedded default, on this machine.

0. a composition question: each member alone against the braid (the zoo's composition probe)
1. build the tiny zoo (cached)      2. a small Ray Tune sweep (records + trial checkpoints)
3. pretrain the meta-braider       4. start Ray Serve locally (API key on, tools limited to 127.0.0.1)
5. chat through the official ``openai`` client: a tool call on a local page, memory recall, streaming,
   constraints                     6. feedback    7. answers, decisions, explanations and timings
"""

from __future__ import annotations

import contextlib
import io
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from braid.paths import demo_dir

PAGE = b"""<!doctype html><html><head><title>Braided language models</title></head><body><main><article>
<h1>Braided language models</h1>
<p>A braid runs several frozen language models side by side. At a few chosen layers each model's hidden
states pass through a small trained fusion module, and the result flows back into every model's residual
stream through a gate that starts at zero, so an untrained braid is exactly its anchor model.</p>
<p>A meta-braider reads the task and the model pool and decides which models to braid, at which layers,
with which fusion strategy and parameters. Feedback on answers keeps teaching it.</p>
</article></main></body></html>"""


class _Page(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        found = self.path == "/braids.html"
        body = PAGE if found else b"not found"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def page_server() -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def composition(console: Console, work: Path, quick: bool) -> dict[str, Any]:
    """Three small models that each know a part (the anchor the format ``key=abc|7.``, one expert the
    words, one the digits) and a pointer braid trained on other keys: held-out keys, side by side."""
    from braid import BraidedLLM, ModelWrapper
    from braid.train import recipe, train_fusion
    from braid.zoo.composition import build_models, task, training_set

    console.rule("0/7 a question no member can answer alone")
    start = time.perf_counter()
    rows = task(seed=0)
    paths, tok = build_models(work / "composition", rows, steps=600)  # fewer and the digit expert guesses
    braided = BraidedLLM(model_configs=list(paths.values()), fusion_strategy="pointer", fusion_dim=32)
    train_fusion(
        braided, training_set(tok, rows[:40], seed=4), recipe("pointer", max_steps=300, progress=False)
    )
    alone = {name: ModelWrapper(path) for name, path in paths.items()}
    table = Table("question", "truth", *(f"{n} alone" for n in alone), "braid (pointer)", title="composition")
    right = 0
    for key, word, digit in rows[40:44]:
        prompt = f"{key}="
        answers = [_greedy(m, prompt) for m in alone.values()]
        braid = braided.generate(prompt, max_new_tokens=8, stop=".").strip()
        right += braid == f"{word}|{digit}"
        table.add_row(prompt, f"{word}|{digit}", *answers, braid)
    console.print(table)
    console.print(f"braid right on {right} of 4 held-out keys ({time.perf_counter() - start:.0f}s)")
    return {"right": right, "asked": 4}


def _greedy(member: Any, prompt: str) -> str:
    ids = member.tokenizer(prompt, return_tensors="pt")["input_ids"]
    out = member.model.generate(
        ids, max_new_tokens=8, do_sample=False, pad_token_id=member.tokenizer.pad_token_id
    )
    return member.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).split(".")[0].strip()


def demo_space(quick: bool):
    """The grid the demo's sweep searches, and so the meta-braider's decision grid."""
    from tune.space import SearchSpace

    return SearchSpace(steps=(20,) if quick else (20, 40), fusion_dims=(8, 16))


def sweep(console: Console, work: Path, quick: bool, verbose: bool = False) -> tuple[dict, list, list, Path]:
    from braid.zoo import build_zoo, load_cards
    from tune.records import ModelFeatures
    from tune.report import best_table, pareto_plot
    from tune.sweep import SweepConfig, run_sweep
    from tune.tasks import TaskSuite

    console.rule("1/7 tiny zoo")
    zoo = build_zoo(tiny=True)
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True)]
    console.print(f"{len(zoo)} members: {', '.join(zoo)}")
    console.rule("2/7 Ray Tune sweep")
    suite = TaskSuite.default(n_train=16 if quick else 32, n_eval=4 if quick else 8)
    if quick:
        suite = TaskSuite(tasks=[t for t in suite.tasks if t.name in ("prose-lm", "arith-qa")])
    space = demo_space(quick)
    cfg = SweepConfig(name="demo-quick" if quick else "demo", num_samples=2 if quick else 4, eval_every=10,
                      storage_path=str(work / "sweeps"), verbose=0)  # fmt: skip
    # Tune prints its experiment table and TensorBoard hint whatever its verbosity: kept for --verbose
    with contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO()):
        records, path = run_sweep(suite, space, cfg, zoo, pool, records_path=work / "sweep.records.jsonl")
    console.print(best_table(records))
    console.print(f"Pareto fronts (score vs decode ms): {pareto_plot(records, work / 'pareto.png')}")
    return zoo, pool, records, path


def pretrain_meta(console: Console, work: Path, zoo: dict, pool: list, records: list, quick: bool) -> Path:
    from meta import DecisionSpace, MetaBraider
    from meta.learn import observations_from_records, pretrain

    console.rule("3/7 pretrain the meta-braider")
    agent = MetaBraider(pool, DecisionSpace.from_search(demo_space(quick)), paths=zoo)
    obs = observations_from_records(agent, records)
    losses = pretrain(agent, obs, steps=100 if quick else 300, progress=True)
    path = work / "meta-braider.pt"
    agent.save(path)
    console.print(f"{len(obs)} observations; loss {losses[0]:.3f} -> {losses[-1]:.3f}; saved {path}")
    console.print(f"learning curve: {loss_plot(losses, work / 'meta_pretraining.png')}")
    return path


def loss_plot(losses: list[float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(losses)
    ax.set(xlabel="pretraining step", ylabel="loss", title="meta-braider pretraining", yscale="log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


TINY = (
    "The chat below runs on the tiny zoo: four models of 30-70 thousand parameters, each trained here in "
    "seconds on one small domain. Their answers are not language; what the chat shows is the machinery "
    "around them: the meta-braider's decision and why, tool calls, memory recall, streaming and feedback. "
    "Scores are the task's log-likelihood measure: higher is better, 0 is perfect. The composition table "
    "above is where a braid does what no member can."
)


def start_serve(console: Console, work: Path, agent: Path, records: Path):
    from serve.app import run
    from serve.config import BraidDeploymentConfig, ServeConfig
    from tools import FetchSettings, ToolsConfig

    console.rule("4/7 Ray Serve")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ServeConfig(
        port=port, api_key=secrets.token_urlsafe(16), meta_braider=str(agent), records=str(records),
        data_dir=str(work / "state"), max_tokens_limit=64, ingress_cpus=0.25,
        tools=ToolsConfig(fetch=FetchSettings(allow=("127.0.0.1/32",), timeout_s=5.0)),
        deployment=BraidDeploymentConfig(replica_cpus=0.5, max_replicas=1, max_ongoing_requests=16),
    )  # fmt: skip
    start = time.perf_counter()
    run(config)
    console.print(f"serving http://127.0.0.1:{port}/v1 (API key on) in {time.perf_counter() - start:.1f}s")
    return config


def chat(console: Console, config: Any, page_url: str) -> list[dict]:
    import openai

    console.rule("5/7 chat through the openai client")
    console.print(TINY, style="dim")
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{config.port}/v1", api_key=config.api_key, max_retries=0
    )
    conversation = f"demo-{int(time.time())}"
    asks = [
        (f"Summarize {page_url}", {"conversation_id": conversation}),
        ("How do braided models share hidden states?", {"conversation_id": conversation}),
        ("what is 17 + 25?", {"constraints": {"compute_budget": 0.6}}),
    ]
    turns = []
    for query, options in asks:
        start = time.perf_counter()
        r = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": query}],
                                           max_tokens=24, extra_body={"braid": options})  # fmt: skip
        turns.append({"query": query, "id": r.id, "model": r.model, "answer": r.choices[0].message.content,
                      "braid": r.model_extra["braid"], "ms": (time.perf_counter() - start) * 1000})  # fmt: skip
    start, pieces, final = time.perf_counter(), [], None
    console.print("[bold]streaming[/bold] def fibonacci(n):", end="")
    column = len("streaming def fibonacci(n):")
    for chunk in client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "def fibonacci(n):"}], max_tokens=24, stream=True
    ):
        piece = chunk.choices[0].delta.content or "" if chunk.choices else ""
        column = _show_piece(console, piece, column)
        pieces.append(piece)
        final = chunk
    console.print()
    turns.append({"query": "def fibonacci(n):", "id": final.id, "model": final.model, "answer": "".join(pieces),
                  "braid": final.model_extra["braid"], "ms": (time.perf_counter() - start) * 1000})  # fmt: skip
    return turns


def _show_piece(console: Console, piece: str, column: int) -> int:
    """Print a streamed piece as it arrives, starting a new line before the console's width; returns the
    column reached."""
    for line_no, part in enumerate(piece.replace("\t", "    ").split("\n")):
        if line_no:
            console.print()
            column = 0
        while part:
            room = console.width - column
            if room <= 0:
                console.print()
                column, room = 0, console.width
            console.print(part[:room], end="", markup=False, highlight=False)
            column, part = column + len(part[:room]), part[room:]
    return column


def feedback(console: Console, config: Any, turns: list[dict]) -> list[dict]:
    import httpx2 as httpx

    console.rule("6/7 feedback")
    url, headers = f"http://127.0.0.1:{config.port}", {"Authorization": f"Bearer {config.api_key}"}
    out = []
    for turn, rating in zip(turns, (1.0, 0.5, -0.5, 1.0), strict=False):
        r = httpx.post(
            url + "/v1/feedback", json={"response_id": turn["id"], "rating": rating}, headers=headers
        )
        r.raise_for_status()
        out.append(r.json())
        console.print(
            f"rated {rating:+.1f}: {turn['query'][:40]!r} -> meta-braider updates {r.json()['updates']}"
        )
    return out


def report(console: Console, turns: list[dict]) -> None:
    console.rule("7/7 answers, decisions, timings")
    table = Table("query", "braid (anchor + members, strategy)", "tools", "memory hits", "answer", "ms",
                  title="demo turns")  # fmt: skip
    for t in turns:
        b, d = t["braid"], t["braid"]["decision"]
        braid = f"{d['anchor']} + {', '.join(m for m in d['members'] if m != d['anchor'])}, {d['strategy']}"
        tools = ", ".join(f"{c['name']}{' (error)' if c['error'] else ''}" for c in b["tool_calls"]) or "-"
        table.add_row(t["query"][:40], braid, tools, str(len(b["memory_hits"])),
                      repr(t["answer"][:48]), f"{t['ms']:.0f}")  # fmt: skip
    console.print(table)
    for t in turns:
        timings = ", ".join(f"{k} {v:.0f}" for k, v in t["braid"]["timings"].items())
        console.print(Panel(f"{t['braid']['explanation']}\n[dim]timings (ms): {timings}[/dim]",
                            title=t["query"][:60]))  # fmt: skip


WIDTH = 100  # the demo's tables and panels fit this many columns (or the terminal, when narrower)

NOISY = (
    "ray",
    "ray.serve",
    "ray.tune",
    "ray.train",
    "ray.data",
    "transformers",
    "optuna",
    "filelock",
    "urllib3",
)


def page(console: Console, config: Any, keep_serving: bool) -> dict:
    """The web page's URL and key (checked to answer); with ``keep_serving``, the server stays up until
    Ctrl-C."""
    import httpx2 as httpx

    url = f"http://127.0.0.1:{config.port}/"
    status = httpx.get(url, timeout=30).status_code
    after = (
        "Ctrl-C stops it" if keep_serving else "it closes with the demo: `braid demo --keep-serving` keeps it"
    )
    console.print(
        Panel(f"web page: {url}\nAPI key: {config.api_key}\n({after})", title="chat, traces, dashboard")
    )
    if keep_serving:
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return {"url": url, "status": status}


def _errors_only(record: Any) -> bool:
    return record.levelno >= 40  # logging.ERROR


def quiet_third_party() -> None:
    """Other libraries' log lines and warnings off, so the demo's own output reads alone: Ray's start-up
    and Serve notices, Tune's hints, Optuna's study line, transformers' config warnings. Workers' output
    stays with them (``log_to_driver=False``). ``braid demo --verbose`` skips this."""
    import logging
    import warnings

    for name in NOISY:  # a filter as well as a level: Serve resets its logger's level when it starts
        logging.getLogger(name).setLevel(logging.ERROR)
        logging.getLogger(name).addFilter(_errors_only)  # one function: a second call adds nothing
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with contextlib.suppress(ImportError):  # Optuna sets its own level on first use: its API, not logging's
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)


def start_ray() -> None:
    """The demo's own local cluster (token authentication on: Ray's default for a new local cluster)."""
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)


def demo_console() -> Console:
    terminal = Console()
    return Console(width=min(terminal.width, WIDTH) if terminal.is_terminal else WIDTH)


def prepare(
    quick: bool = False, workdir: str | Path | None = None, verbose: bool = False
) -> tuple[Path, Path]:
    """Only what serve.yaml reads: the tiny zoo, a sweep's records and a pretrained meta-braider (no chats).
    Returns (meta-braider checkpoint, records)."""
    import ray

    if not verbose:
        quiet_third_party()
    console = demo_console()
    work = Path(workdir) if workdir else demo_dir()
    work.mkdir(parents=True, exist_ok=True)
    start_ray()
    try:
        zoo, pool, records, records_path = sweep(console, work, quick, verbose)
        agent = pretrain_meta(console, work, zoo, pool, records, quick)
    finally:
        ray.shutdown()
    console.print(f"meta-braider: {agent}\nsweep records: {records_path}", soft_wrap=True)
    return Path(agent), Path(records_path)


def main(
    quick: bool = False,
    workdir: str | Path | None = None,
    verbose: bool = False,
    console: Console | None = None,
    keep_serving: bool = False,
) -> dict:
    import ray

    if not verbose:
        quiet_third_party()
    console = console or demo_console()
    work = Path(workdir) if workdir else demo_dir()
    work.mkdir(parents=True, exist_ok=True)
    start, pages = time.perf_counter(), page_server()
    try:
        composed = composition(console, work, quick)
        start_ray()
        zoo, pool, records, records_path = sweep(console, work, quick, verbose)
        agent = pretrain_meta(console, work, zoo, pool, records, quick)
        config = start_serve(console, work, agent, records_path)
        turns = chat(console, config, f"http://127.0.0.1:{pages.server_address[1]}/braids.html")
        rated = feedback(console, config, turns)
        report(console, turns)
        web = page(console, config, keep_serving)
    finally:
        pages.shutdown()
        if ray.is_initialized():  # the cluster is the demo's own: shutting it down stops Serve with it
            ray.shutdown()  # (serve.shutdown() first makes the raylet report a killed controller task)
    console.print(f"demo finished in {time.perf_counter() - start:.0f}s")
    return {
        "composition": composed,
        "turns": turns,
        "feedback": rated,
        "records": len(records),
        "page": web,
        "seconds": time.perf_counter() - start,
    }
