"""Evaluation through faults on the local target with the real demo model: a replica killed (SIGKILL, as an
out-of-memory kill would) mid-evaluation gives an incomplete result with the failures apart, the CLI exits
non-zero, a failed replica is reported as failed (not unreachable), and after a redeploy `retry()` sends only
what is missing; a replica that is not running is woken before the prompts are sent."""
import os
import shutil
import signal
import threading

import pytest

import aitk_nb
from aitk_nb.cli import INCOMPLETE, main
from aitk_nb.errors import ReplicaCrashedError
from aitk_nb.evaluation import EvalResult, prompts as prompt_scoring
from aitk_nb.project import find_project
from aitk_nb.targets.local import LocalTarget
from helpers import REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
EVAL = REPO / "demo/eval.jsonl"  # 12 prompts: 10 facts the adapter learned, 2 controls


@pytest.fixture
def deployed(tmp_path, demo_assets):
    root = tmp_path / "proj"
    shutil.copytree(REPO / "infra/provision", root / "infra/provision")
    aitk_nb.provision("local", project=root, port=free_port(), progress=False)
    aitk_nb.deploy([str(demo_assets.adapter)], str(demo_assets.base_model), project=root, progress=False)
    yield root
    aitk_nb.teardown(yes=True, project=root, show=None)


def test_a_replica_killed_mid_evaluation_then_retry_after_a_redeploy(deployed, demo_assets, tmp_path, monkeypatch, capsys):
    root = deployed
    target = LocalTarget(find_project(root))
    contains = prompt_scoring.SCORERS["contains"]
    scored, lock = [], threading.Lock()

    def contains_then_kill(answer, expected):  # the kill comes with the 4th answer back, mid-run
        with lock:
            scored.append(answer)
            if len(scored) == 4:
                os.killpg(target.replica().pid, signal.SIGKILL)
        return contains(answer, expected)

    monkeypatch.setitem(prompt_scoring.SCORERS, "contains", contains_then_kill)
    out = tmp_path / "run.jsonl"
    code = main(["eval", str(EVAL), "--project", str(root), "--out", str(out), "--concurrency", "2",
                 "--max-new-tokens", "16"])
    monkeypatch.setitem(prompt_scoring.SCORERS, "contains", contains)
    printed = capsys.readouterr()
    assert code == INCOMPLETE, printed
    assert "the endpoint stopped answering at " in printed.err and "nothing more was sent" in printed.err
    assert "replica exited, exit signal 9 (SIGKILL)" in printed.err, printed.err
    assert f"`aitk eval --resume {out}`" in printed.err

    result = EvalResult.load(out)
    assert not result.complete and result.planned == 24
    assert result.extra["project"] == str(root.resolve())  # a resume from any folder finds this project's endpoint
    received, failed_rows = result.received, [r for r in result.rows if r.error]
    assert 4 <= len(received) < 24 and failed_rows, str(result)
    assert len(result.rows) < 24  # it stopped sending: some answers were never asked
    assert all(r.match is None for r in failed_rows)  # failed, not wrong
    for s in result.summary():
        assert s["answers"] + s["failed"] == 12
        mine = [r for r in received if r.variant == s["variant"] and r.match is not None]
        assert s["accuracy"] == (round(sum(r.match for r in mine) / len(mine), 3) if mine else None)
    assert "incomplete: " in str(result) and "the endpoint stopped answering" in str(result)

    # the dead replica is reported as failed, with how it ended, not as "cannot reach"
    with pytest.raises(ReplicaCrashedError, match="exit signal 9"):
        aitk_nb.evaluate(str(EVAL), project=root, progress=False)

    aitk_nb.deploy(project=root, progress=False)  # nothing changed: restarts the replica that does not run
    before = {r.key: r for r in result.received}
    result.retry(progress=False)
    assert result.complete and len(result.rows) == 24 and all(r.error is None for r in result.rows)
    assert all(result.rows[[r.key for r in result.rows].index(k)] is row for k, row in before.items())  # kept, not re-asked
    assert result.accuracy(demo_assets.adapter_name, "facts") > result.accuracy("base", "facts")
    assert EvalResult.load(out).complete  # saved back into the file
    assert "incomplete" not in str(result) and f"{demo_assets.adapter_name} vs base:" in str(result)


def test_a_replica_that_is_not_running_is_woken_first(deployed, demo_assets, capsys):
    root = deployed
    target = LocalTarget(find_project(root))
    assert target.stop() == "replica stopped" and not target.running()
    report = aitk_nb.evaluate(['{"prompt": "What is the capital of Quorvania?", "expected": "Zeltrin"}'],
                              variants=demo_assets.adapter_name, project=root, max_new_tokens=16)
    assert report.complete and report.accuracy(demo_assets.adapter_name) == 1.0
    assert target.running()
    assert "waking the endpoint (scaled to zero" in capsys.readouterr().err
