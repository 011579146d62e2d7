"""Shared by the test folders (imported as `helpers`: tests/ is on sys.path via its conftest)."""
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
