"""Long work in the background with the Azure SDK poller's shape: `begin_deploy` / `begin_provision`
return at once, the caller's thread stays free, `cancel()` stops at a safe point, an interrupt of a
waiting `result()` stops the work too; the magics wait by default and `--background` does not."""
import _thread
import hashlib
import json
import os
import threading
import time

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import aitk_nb
from aitk_nb.errors import OperationCancelledError
from aitk_nb.operations import Operation, OperationStatus
from helpers import app_folder, free_port


def test_the_poller_shape():
    gate = threading.Event()
    seen = []

    def work(op):
        op.report("half way", 0.5)
        gate.wait(10)
        return 42

    op = Operation.start("job", work)
    op.add_progress_callback(seen.append)
    with pytest.raises(TimeoutError, match="job is still running after 0.1 s"):
        op.result(timeout=0.1)
    assert not op.done() and op.status() == OperationStatus.IN_PROGRESS == "InProgress"
    ended = []
    op.add_done_callback(lambda o: ended.append(o.status()))
    gate.set()
    assert op.result() == 42 and op.done() and op.status() == "Succeeded" and ended == ["Succeeded"]
    assert op.continuation_token() is None and op.cancel() is False  # done: nothing to cancel
    late = []
    op.add_done_callback(late.append)  # added after the end: called at once
    assert late == [op]


def test_cancel_stops_at_the_next_safe_point_and_says_what_that_left():
    steps = []

    def work(op):
        for i in range(200):
            op.checkpoint(f"{i} steps done")
            steps.append(i)
            time.sleep(0.01)
        return "finished"

    op = Operation.start("job", work)
    time.sleep(0.1)
    assert op.cancel() is True
    with pytest.raises(OperationCancelledError, match=r"job cancelled: \d+ steps done"):
        op.result(timeout=10)
    assert op.status() == "Canceled" and 0 < len(steps) < 200


def test_a_failure_is_raised_by_result_with_its_own_type():
    op = Operation.start("job", lambda op: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        op.result(timeout=10)
    assert op.status() == "Failed"


def test_an_interrupt_while_result_waits_stops_the_work_at_its_next_safe_point():
    stopped = threading.Event()

    def work(op):
        try:
            while True:
                op.checkpoint("nothing")
                time.sleep(0.01)
        finally:
            stopped.set()

    op = Operation.start("job", work)
    threading.Timer(0.2, _thread.interrupt_main).start()  # what Kernel > Interrupt does to the waiting cell
    with pytest.raises(KeyboardInterrupt):
        op.result()
    assert stopped.is_set() and op.status() == "Canceled"


def model_with_files(root, count, size):
    model = root / "many-files-model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for i in range(count):
        (model / f"shard-{i:03d}.bin").write_bytes(os.urandom(size))
    return model


def test_a_cancelled_deploy_stops_between_files_and_a_rerun_finishes(project, tmp_path):
    aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    model = model_with_files(tmp_path, count=40, size=2 * 2**20)
    op = aitk_nb.begin_deploy(model=str(model), project=project, restart=False, progress=False)
    # the caller is free while it runs: cancel once a fifth of the bytes are sent (the model's, mostly)
    op.add_progress_callback(lambda p: (p.fraction or 0) > 0.2 and op.cancel())
    with pytest.raises(OperationCancelledError, match="deploy cancelled: stopped between files: each file on the share "
                                                      "is whole .* run `%aitk deploy` again to finish"):
        op.result(timeout=120)
    assert op.status() == "Canceled"
    share = next((project / ".aitk/local/shares").iterdir())
    assert not (share / app_folder(project) / "settings.json").exists()  # still names what was there before: nothing
    sent = sorted((share / "model-cache/many-files-model").glob("shard-*.bin"))
    assert 0 < len(sent) < 40, "the cancel did not stop between files"
    for f in sent:  # never half a file
        assert hashlib.md5(f.read_bytes()).digest() == hashlib.md5((model / f.name).read_bytes()).digest()

    result = aitk_nb.begin_deploy(model=str(model), project=project, restart=False, progress=False).result()
    assert len(list((share / "model-cache/many-files-model").glob("shard-*.bin"))) == 40
    assert f"{40 - len(sent) + 1} changed" in next(s for s in result.synced if s.startswith("model-cache"))
    assert json.loads((share / app_folder(project) / "settings.json").read_text())["base_model"] == "model-cache/many-files-model"


def test_bad_input_is_refused_before_anything_starts(project):
    aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    with pytest.raises(aitk_nb.AitkError, match="--adapter /no/such: no such folder"):
        aitk_nb.begin_deploy(["/no/such"], "org/base", project=project)


def test_the_magic_waits_unless_told_to_run_in_the_background(project, tmp_path, monkeypatch, capsys):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "aitk_nb")
    monkeypatch.chdir(project)
    op = ip.run_line_magic("aitk", f"provision --target local --port {free_port()} --background")
    assert isinstance(op, Operation)
    assert op.result(timeout=30).endpoint.startswith("http://127.0.0.1:") and op.status() == "Succeeded"
    model = model_with_files(tmp_path, count=1, size=1024)
    done = ip.run_line_magic("aitk", f"deploy --model {model} --no-restart")  # waits: the result itself
    assert done.synced and not done.restarted
    with pytest.raises(UsageError, match="--adapter /no/such/lora: no such folder"):  # bad input: at once
        ip.run_line_magic("aitk", "deploy --adapter /no/such/lora --background")
    # a port out of range is found when the work reads the template, after the magic has returned (a cell
    # body the template does not declare is refused at once: issue 20, item 9)
    failing = ip.run_line_magic("aitk", "provision --target local --port 70000 --background")
    failing.wait(30)
    assert failing.status() == "Failed"
    err = capsys.readouterr().err  # the outcome shows where the operation started, as one line
    assert "provision (local): ConfigError: --port 70000: a TCP port from 1 to 65535" in err
    assert "Traceback" not in err


def test_the_cli_has_no_background():
    from aitk_nb.cli import main

    assert main(["deploy", "--background", "--project", "/nonexistent"]) == 1


def test_a_question_is_answered_in_the_thread_that_waits_for_the_result():
    """input() in a kernel must run where the cell runs: the work's question goes to result()'s thread."""
    asked_in = []

    def confirm(question):
        asked_in.append((threading.current_thread(), question))
        return True

    op = Operation.start("job", lambda op: op.ask("apply?"), confirm=confirm)
    assert op.result(timeout=10) is True
    assert asked_in == [(threading.current_thread(), "apply?")]


def test_a_question_in_the_background_is_no_and_a_waiting_one_stops_on_cancel():
    assert Operation.start("job", lambda op: op.ask("apply?")).result(timeout=10) is False  # no confirm: background
    never = lambda question: pytest.fail("asked although no one called result()")  # noqa: E731
    op = Operation.start("job", lambda op: op.ask("apply?"), confirm=never)
    op.wait(0.5)  # wait() is not result(): it answers nothing
    assert not op.done() and op.progress.message == "waiting for an answer: apply?"
    op.cancel()
    with pytest.raises(OperationCancelledError, match="the question was not answered"):
        op.result(timeout=10)
