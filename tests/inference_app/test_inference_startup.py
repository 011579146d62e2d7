"""Start-up failures: the process exits non-zero with one clear line, never hangs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from server_helpers import REPO, free_port, run_server_to_exit, server_env, write_settings


@pytest.mark.timeout(90)
def test_missing_adapter_exits_non_zero_naming_adapter_and_path(tmp_path, base_model_path):
    write_settings(tmp_path, {"base_model": str(base_model_path), "adapters": {"ghost": "models/ghost"}})
    code, out = run_server_to_exit(tmp_path)
    assert code != 0
    assert "adapter 'ghost'" in out and str(tmp_path / "models" / "ghost") in out and "does not exist" in out


@pytest.mark.timeout(90)
def test_unloadable_base_model_exits_1(tmp_path):
    write_settings(tmp_path, {"base_model": "no-org/no-such-model"})
    code, out = run_server_to_exit(tmp_path, HF_HUB_OFFLINE="1")
    assert code == 1, out
    assert "model load failed" in out and "no-org/no-such-model" in out


@pytest.mark.timeout(90)
def test_start_sh_uses_aitk_python(tmp_path):
    """The local target's path through start.sh: exec $AITK_PYTHON -m inference_app (fails fast here)."""
    write_settings(tmp_path, {"adapters": {"ghost": "/nonexistent/ghost"}})
    env = server_env(tmp_path, free_port(), AITK_PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", "inference_app/start.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "adapter 'ghost' at /nonexistent/ghost" in proc.stdout
