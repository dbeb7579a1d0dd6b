"""Session-wide pico models: real HF architectures from tiny configs, saved and loaded from disk."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from braid.zoo import build_model, train_tokenizer  # noqa: E402

PROSE = [
    "the braid reads the text and the anchor writes the answer",
    "models exchange hidden states at chosen layers through small fusion modules",
    "a quick brown fox jumps over the lazy dog near the river bank",
    "numbers like 12, 345 and 6789 appear in text; so do symbols = + - . ;",
    "every member keeps its own cache while the braid generates new tokens",
]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    session.config._braid_exitstatus = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave without finalizing the interpreter once the session's result is printed: Ray's and torch's
    background threads have crashed CPython's teardown (a segfault after "N passed", which turned a green
    run's exit status red). The status is the session's own, so a failure still fails."""
    status = getattr(config, "_braid_exitstatus", None)
    if status is not None and os.environ.get("BRAID_TEST_FINALIZE") != "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tokenizer():
    """Byte-level BPE with a small vocab, so random letter strings stay a few characters per token."""
    return train_tokenizer(PROSE * 20, vocab_size=300)


@pytest.fixture(scope="session")
def save_pico(tmp_path_factory, tokenizer):
    """save_pico(model, name) -> directory holding the model and the shared tokenizer."""
    root = tmp_path_factory.mktemp("pico")

    def save(model, name: str) -> str:
        path = root / name
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        return str(path)

    return save


@pytest.fixture(scope="session")
def pico(save_pico, tokenizer):
    """pico(family, hidden, layers, seed) -> path of a freshly initialised saved model (built once)."""
    built: dict[tuple, str] = {}

    def make(family: str = "llama", hidden: int = 32, layers: int = 2, seed: int = 0) -> str:
        key = (family, hidden, layers, seed)
        if key not in built:
            model = build_model(family, len(tokenizer), seed=seed, hidden=hidden, layers=layers)
            built[key] = save_pico(model, f"{family}-{hidden}x{layers}-s{seed}")
        return built[key]

    return make


@pytest.fixture(scope="session")
def trio(pico):
    """Three members of different families, widths (32/48/64) and depths (2/3/4)."""
    return [pico("llama", 32, 2), pico("qwen2", 48, 3), pico("gpt2", 64, 4)]


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray cluster the size of a CI machine, per test module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def assert_cached_generation_is_the_forward(braided, prompt: torch.Tensor, new_tokens: int) -> None:
    """Greedy generation through the caches picks, at every step, the argmax of a full forward pass over
    the sequence so far (end of sequence ignored, so every step runs)."""
    from braid.generation import generate_tokens
    from braid.sampling import SamplingParams

    eos, braided.tokenizer.eos_token_id = braided.tokenizer.eos_token_id, None
    try:
        tokens = list(generate_tokens(braided, prompt, SamplingParams(max_new_tokens=new_tokens)))
    finally:
        braided.tokenizer.eos_token_id = eos
    assert len(tokens) == new_tokens
    seq = prompt
    with torch.no_grad():
        for token in tokens:
            assert int(braided(seq).logits[0, -1].argmax()) == token
            seq = torch.cat([seq, torch.tensor([[token]])], 1)


def randomize_fusion(braided, seed: int = 0) -> None:
    """Give every fusion parameter (gates included) random values so fusion really acts."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in braided.fusion_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """The --tiny zoo, built once per session into a temporary cache: (cache dir, {name: path})."""
    from braid.zoo import build_zoo

    cache = tmp_path_factory.mktemp("zoo")
    return cache, build_zoo(tiny=True, cache_dir=cache, progress=False)


@pytest.fixture(scope="session")
def cross_trio(tmp_path_factory):
    """Anchor with byte-level BPE, members with WordPiece and Unigram: different vocabularies, sizes,
    special tokens and BOS/EOS conventions."""
    root = tmp_path_factory.mktemp("cross")
    specs = [
        ("llama", "bpe", 300, 32, 2),
        ("qwen2", "wordpiece", 200, 48, 3),
        ("gpt2", "unigram", 160, 64, 4),
    ]
    paths = []
    for i, (family, kind, vocab, hidden, layers) in enumerate(specs):
        tok = train_tokenizer(PROSE * 20, vocab_size=vocab, kind=kind)
        path = root / f"{family}-{kind}"
        build_model(family, len(tok), seed=10 + i, hidden=hidden, layers=layers).save_pretrained(path)
        tok.save_pretrained(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="session")
def meta_checkpoint(tiny_zoo, tmp_path_factory):
    """A meta-braider over the tiny zoo, saved like `braid meta train` saves it."""
    from braid.zoo import load_cards
    from meta import MetaBraider
    from tune.records import ModelFeatures

    cache, paths = tiny_zoo
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True, cache_dir=cache)]
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("meta") / "meta-braider.pt"
    MetaBraider(pool, paths=paths).save(path)
    return path


@pytest.fixture(scope="session")
def neo4j_settings(tmp_path_factory):
    """(uri, user, password): NEO4J_URI if set, else a real Neo4j 5 started for this session."""
    pytest.importorskip("neo4j")
    if os.environ.get("NEO4J_URI"):
        yield (
            os.environ["NEO4J_URI"],
            os.environ.get("NEO4J_USER", "neo4j"),
            os.environ.get("NEO4J_PASSWORD", ""),
        )
        return
    from memory.neo4j_server import Neo4jServer

    with Neo4jServer(tmp_path_factory.mktemp("neo4j")) as server:
        yield server.uri, *server.auth


@pytest.fixture(scope="session")
def pages():
    """A page server on 127.0.0.1 for tool calls (tests/tools/conftest.py)."""
    from tests.tools.conftest import ReplayServer

    server = ReplayServer()
    yield server
    server.close()


def wait_for_port(proc, port: int, timeout_s: float = 60.0) -> None:
    """Until a server subprocess accepts connections on 127.0.0.1:``port``; its stderr if it exits first."""
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
            time.sleep(0.2)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s:g}s")


@contextlib.contextmanager
def mcp_http_server(*args: str):
    """Our MCP server over streamable HTTP in a subprocess on a free loopback port, with extra CLI ``args``;
    yields its /mcp URL."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "tools.mcp_server", "--transport", "http", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(proc, port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
