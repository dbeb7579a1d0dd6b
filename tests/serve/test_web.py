"""The gateway's web page in a real headless Chromium (DevTools protocol, scripts/browser.py) against
`braid serve --no-ray` on the tiny zoo: the key, a streamed answer, its decision trace, a rating that moves
the meta-braider, the conversation after a reload, stop, the dashboard, 360 px, and no request off-origin."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from scripts.browser import Browser
from tests.conftest import wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = "page-test-key"
ROOT = Path(__file__).resolve().parents[2]


def sweep_records(meta_checkpoint: Path, path: Path, n: int = 6) -> Path:
    """A few sweep records over the tiny zoo's pool: configurations of the agent's grid with made-up scores
    and costs (the dashboard draws whatever the records say; measuring them is tune's job)."""
    from meta import MetaBraider
    from tune.records import SweepRecord, write_records
    from tune.tasks import TaskInfo

    agent = MetaBraider.load(meta_checkpoint)
    task = TaskInfo(name="arith-qa", type="arithmetic", domain="arithmetic", metric="exact_match", complexity=2,
                    description="sums")  # fmt: skip
    records = []
    for i in range(n):
        d = agent.candidates.decision(i * 7 % len(agent.candidates), 0.5, 0.0)
        choice = {**d.structure().model_dump(), "lr": d.lr, "steps": d.steps, "temperature": 0.0,
                  "fusion_layers": []}  # fmt: skip
        records.append(SweepRecord(
            sweep="page", trial_id=f"t{i}", task=task, pool=tuple(agent.pool), config=choice,
            metrics={"score": -3.0 + 0.3 * (i % 4), "exact_match": 0.1 * i},
            cost={"trained_params": 100 * (i + 1), "decode_ms": 1.0 + i, "memory_mb": 1.0},
            iterations=1, steps_trained=10, stopped_early=False,
        ))  # fmt: skip
    return write_records(records, path)


@pytest.fixture(scope="module")
def server(meta_checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page")
    records = sweep_records(meta_checkpoint, tmp / "records.jsonl")
    config = tmp / "serve.yaml"
    config.write_text(
        f"meta_braider: {meta_checkpoint}\ndata_dir: {tmp / 'state'}\nrecords: {records}\n"
        "use_tools: false\nmax_tokens_limit: 256\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRAID_API_KEY": KEY}
    cmd = [sys.executable, "-m", "cli", "serve", "--config", str(config), "--no-ray", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(proc, port, timeout_s=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with Browser(width=1200, height=800) as b:
        yield b


def visible(selector: str) -> str:
    return (
        f"(() => {{ const e = document.querySelector({json.dumps(selector)}); return !!e && !e.hidden; }})()"
    )


def text(selector: str) -> str:
    return f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"


def test_a_wrong_key_shows_an_error(server, browser):
    browser.open(server + "/")
    browser.wait(visible("#login"))
    browser.type("#key", "not-the-key")
    browser.click("#login-form button")
    message = browser.wait(f"{visible('#login-error')} && {text('#login-error')}")
    assert "refused" in message and "API key" in message
    assert browser.eval("document.querySelector('#chat').hidden")


def test_chat_streams_traces_and_rates(server, browser):
    browser.open(server + "/")
    browser.wait(visible("#login"))
    browser.type("#key", KEY)
    browser.click("#login-form button")
    browser.wait(visible("#chat"))
    # count the answer's text updates: a streamed answer arrives in several
    browser.eval("""window.updates = 0; new MutationObserver(() => window.updates++)
        .observe(document.querySelector('#messages'), {subtree: true, characterData: true, childList: true}); 1""")
    browser.type("#prompt", "def add(a, b):")
    browser.press("Enter")
    browser.wait("document.querySelector('.message.assistant .trace')", timeout_s=120)
    answer = browser.eval(text(".message.assistant .text"))
    assert answer and browser.eval("window.updates") >= 3
    browser.click(".message.assistant .trace summary")
    fields = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('.trace dd')].map(d => [d.dataset.field, d.textContent]))"
    )
    assert fields["braid"] and fields["anchor"] and fields["strategy"] and fields["task"].startswith("code")
    assert "decide" in fields["timings"] and "generate" in fields["timings"]
    assert "policy" in browser.eval(text(".trace .explanation"))
    browser.click(".message.assistant .rate .up")
    result = browser.wait(f"{text('.rate-result')}.includes('→') && {text('.rate-result')}")
    before, after = (float(x) for x in re.findall(r"([0-9.e+-]+) → ([0-9.e+-]+)", result)[0])
    assert after > before  # a good rating raises the policy's probability of that braid


def test_a_reload_finds_the_conversation(server, browser):
    browser.reload()
    browser.wait(visible("#chat"))  # the key is kept in the tab's session storage
    title = browser.wait("document.querySelector('#conversation-list button') && "
                         "document.querySelector('#conversation-list button').textContent")  # fmt: skip
    assert title.startswith("def add")
    browser.click("#conversation-list button")
    browser.wait("document.querySelectorAll('#messages .message').length >= 2")
    assert browser.eval(text("#messages .message.user .text")) == "def add(a, b):"


def test_stop_ends_generation_on_the_server(server, browser):
    # a sampled answer can end by itself (a stop token) before the click reaches the server: then the server
    # counts it finished, not stopped, and the test asks again
    for _ in range(3):
        before = streams(server)
        ended = sum(before.values()) + 1
        browser.eval("document.querySelector('#max_tokens').value = '256'; 1")
        browser.eval("document.querySelector('#new-conversation').click(); 1")
        browser.wait("document.querySelectorAll('#messages .message').length === 0")
        browser.type("#prompt", "Once upon a time")
        browser.press("Enter")
        browser.wait(f"{text('.message.assistant .text')}.length > 0", timeout_s=120)
        browser.click("#stop")
        browser.wait("document.querySelector('.message.assistant .stopped')")
        assert wait_until(lambda n=ended: sum(streams(server).values()) == n)
        if streams(server)["stopped"] == before["stopped"] + 1:
            return
    pytest.fail("three answers in a row ended before the stop reached the server")


def test_dashboard_draws_the_records_and_decisions(server, browser):
    browser.click("#tab-dashboard")
    browser.wait("document.querySelectorAll('#sweeps circle').length > 0")
    assert browser.eval("document.querySelectorAll('#sweeps circle').length") == 6
    assert browser.eval("document.querySelectorAll('#sweeps circle.pareto').length") >= 1
    assert "arithmetic" in browser.eval(text("#sweeps"))
    browser.wait(f"{text('#decisions')}.includes('code_completion')")


def test_the_page_fits_360_px_and_asks_nothing_off_origin(server, browser):
    browser.resize(360, 740)
    browser.click("#tab-chat")
    browser.wait("window.innerWidth === 360")
    wide = browser.eval("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 361)"
                        ".map(e => e.tagName + '#' + e.id + '.' + e.className)")  # fmt: skip
    assert browser.eval("document.documentElement.scrollWidth") <= 360, wide
    browser.resize(1200, 800)
    off = [u for u in browser.requests if not u.startswith((server + "/", "data:", "about:"))]
    assert browser.requests and not off, off


def streams(server: str) -> dict[str, int]:
    """The server's count of streamed answers stopped by their client and finished whole."""
    metrics = httpx.get(server + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    return {
        k: int(n) for k, n in re.findall(r"^braid_streams_(stopped|finished)_total (\d+)$", metrics, re.M)
    }


def wait_until(check, timeout_s: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False
