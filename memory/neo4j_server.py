"""A real Neo4j 5 on 127.0.0.1 without Docker: builds the Maven launcher in memory/neo4j_launcher (artifacts
from Maven Central) and runs it. Used by the test suite when no NEO4J_URI is given, and by developers."""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import socket
import subprocess
import threading
from pathlib import Path

LAUNCHER = Path(__file__).resolve().parent / "neo4j_launcher"


def build_launcher(timeout: float = 900) -> str:
    """Compile the launcher once (``mvn package``); returns its Java classpath."""
    classes, lib = LAUNCHER / "target" / "classes", LAUNCHER / "target" / "lib"
    if not (classes / "braid" / "Neo4jLauncher.class").exists() or not lib.is_dir():
        for tool in ("mvn", "java"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"starting Neo4j needs {tool!r} on PATH (Java 17+ and Maven)")
        subprocess.run(
            ["mvn", "-q", "-B", "package", "-DskipTests"], cwd=LAUNCHER, check=True, timeout=timeout
        )
    return f"{classes}{os.pathsep}{lib}/*"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Neo4jServer:
    """``with Neo4jServer(data_dir) as server: server.uri, server.auth``."""

    def __init__(self, data_dir: str | Path, port: int | None = None, password: str | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.password = password or secrets.token_urlsafe(12)
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def auth(self) -> tuple[str, str]:
        return ("neo4j", self.password)

    def start(self, timeout: float = 180) -> Neo4jServer:
        classpath = build_launcher()
        cmd = [
            "java",
            "-Xmx1g",
            "-cp",
            classpath,
            "braid.Neo4jLauncher",
            str(self.data_dir),
            str(self.port),
            self.password,
        ]
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(line) for line in self.process.stdout], daemon=True
        ).start()
        log: list[str] = []
        try:
            while True:
                line = lines.get(timeout=timeout)
                log.append(line)
                if line.startswith("READY"):
                    return self
        except queue.Empty:
            self.stop()
            raise TimeoutError(
                f"Neo4j did not start within {timeout:.0f}s; last output:\n{''.join(log[-20:])}"
            ) from None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin:
            self.process.stdin.close()  # the launcher shuts the database down when its stdin closes
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> Neo4jServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
