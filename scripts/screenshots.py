"""Screenshots of the gateway's web page for the README: the chat with a decision trace and a rating, the
dashboard, and the chat at 360 px. Serves the demo's meta-braider and sweep records (`braid demo --prepare`
makes them when missing) with `braid serve --no-ray`, drives a headless Chromium, writes docs/page-*.png.

    python scripts/screenshots.py
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from braid.paths import demo_dir  # noqa: E402
from scripts.browser import Browser  # noqa: E402

PROMPTS = ("def fibonacci(n):", "What is 17 + 25?")


def served(work: Path, key: str, state: Path) -> tuple[subprocess.Popen, str]:
    config = state / "serve.yaml"
    config.write_text(
        f"meta_braider: {work / 'meta-braider.pt'}\nrecords: {work / 'sweep.records.jsonl'}\n"
        f"data_dir: {state}\nuse_tools: false\nmax_tokens_limit: 64\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRAID_API_KEY": key}
    cmd = [sys.executable, "-m", "cli", "serve", "--config", str(config), "--no-ray", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from tests.conftest import wait_for_port

    wait_for_port(proc, port, timeout_s=180)
    return proc, f"http://127.0.0.1:{port}"


def chat(b: Browser, url: str, key: str) -> None:
    b.open(url + "/")
    b.wait("!document.querySelector('#login').hidden")
    b.type("#key", key)
    b.click("#login-form button")
    b.wait("!document.querySelector('#chat').hidden")
    b.eval("document.querySelector('#max_tokens').value = '24'; 1")
    for i, prompt in enumerate(PROMPTS, 1):
        b.type("#prompt", prompt)
        b.press("Enter")
        b.wait(f"document.querySelectorAll('.message.assistant .trace').length === {i}", timeout_s=180)
    b.eval("document.querySelectorAll('.message.assistant .trace')[1].open = true; 1")
    b.click(".message.assistant .rate .up")
    b.wait("document.querySelector('.rate-result').textContent.includes('→')")


def main() -> None:
    work = demo_dir()
    if not (work / "meta-braider.pt").exists() or not (work / "sweep.records.jsonl").exists():
        subprocess.run([sys.executable, "-m", "cli", "demo", "--prepare"], cwd=ROOT, check=True)
    key = secrets.token_urlsafe(12)
    docs = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = served(work, key, Path(tmp))
        try:
            with Browser(width=1200, height=900) as b:
                chat(b, url, key)
                b.screenshot(docs / "page-chat.png")
                b.click("#tab-dashboard")
                b.wait("document.querySelectorAll('#sweeps circle').length > 0")
                b.screenshot(docs / "page-dashboard.png")
                b.click("#tab-chat")
                b.resize(360, 740)
                b.wait("window.innerWidth === 360")
                b.screenshot(docs / "page-360px.png", full_page=False)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    for name in ("page-chat.png", "page-dashboard.png", "page-360px.png"):
        print(docs / name)


if __name__ == "__main__":
    main()
