"""Helpers for the inference_app tests (a module, not the conftest, so test files can import them)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from helpers import REPO, free_port

__all__ = ["REPO", "free_port", "run_server_to_exit", "serve_in_thread", "server_env", "write_settings"]


def write_settings(root: Path, content: dict) -> Path:
    path = root / "inference" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def server_env(root: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITK_")}
    env.update(
        AITK_MOUNT_ROOT=str(root),
        AITK_SETTINGS=str(root / "inference" / "settings.json"),
        HOST="127.0.0.1",
        PORT=str(port),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO),
        **extra,
    )
    return env


def run_server_to_exit(root: Path, **extra_env: str) -> tuple[int, str]:
    """Run ``python -m inference_app`` on ``root`` (a start-up that should fail): exit code and output."""
    proc = subprocess.run(
        [sys.executable, "-m", "inference_app"], cwd=REPO, env=server_env(root, free_port(), **extra_env),
        capture_output=True, text=True, timeout=60,
    )
    return proc.returncode, proc.stdout + proc.stderr


@contextlib.contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """A real uvicorn on loopback in this process (so a test can look at the engine), yielding its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
