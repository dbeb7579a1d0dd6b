"""``braid serve --no-ray`` as a user runs it: it says where it listens, and answers there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx


def test_serve_no_ray_prints_its_url_and_answers_there(meta_checkpoint, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "serve.yaml"
    config.write_text(f"meta_braider: {meta_checkpoint}\ndata_dir: {tmp_path / 'state'}\nuse_tools: false\n")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root, "BRAID_API_KEY": "", "COLUMNS": "200"}
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "serve",
        "--config",
        str(config),
        "--no-ray",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, lines, deadline = f"http://127.0.0.1:{port}/v1", [], time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            lines.append(line)
            if "serving on" in line:
                break
        assert f"serving on {url}" in "".join(lines), "".join(lines)
        for _ in range(100):
            try:
                assert httpx.get(url.removesuffix("/v1") + "/healthz", timeout=5).json() == {"status": "ok"}
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(url + "/models", timeout=5).json()["data"][0]["id"] == "auto"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
