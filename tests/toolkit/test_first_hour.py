"""A new user's first hour (issue 20): messages and help name the right thing for where the user is
(terminal or notebook, cell body or file), and a mistyped option gets the verb's own usage."""
import subprocess
import sys

import pytest
from IPython.core.error import UsageError

from aitk_nb.cli import main
from helpers import REPO


def cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse's own errors and --help
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


# -- item 8: the CLI never speaks of cells, Kernel > Interrupt, or options it refuses ----------------
def test_cli_eval_of_an_empty_file_names_the_file(capsys, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    rc, _, err = cli(capsys, "eval", str(empty), "--endpoint", "http://127.0.0.1:9")
    assert rc == 1 and err == f"aitk eval: error: no prompts given; put one prompt per line in {empty}\n"


@pytest.mark.parametrize("verb", ["provision", "deploy", "status", "endpoint", "logs", "scale", "teardown", "eval"])
def test_cli_help_speaks_of_no_cell_kernel_or_notebook_only_option(capsys, verb):
    rc, out, _ = cli(capsys, verb, "--help")
    assert rc == 0 and out.startswith(f"usage: aitk {verb} ")
    for word in ("cell", "Kernel", "--background", "notebook"):
        assert word not in out, (verb, word)


def test_cli_still_refuses_background_with_the_reason(capsys):
    rc, _, err = cli(capsys, "deploy", "--background")
    assert rc == 1 and "--background is for notebooks" in err


def test_the_magic_keeps_background_and_its_cell_help(shell, capsys):
    shell.run_line_magic("aitk", "help")
    text = capsys.readouterr().out
    assert "--background" in text and "Kernel > Interrupt" in text


# -- item 9: a bad %%aitk provision body is named as the cell body -----------------------------------
def usage_error(shell, line, cell=None) -> str:
    with pytest.raises(UsageError) as e:
        shell.run_cell_magic("aitk", line, cell) if cell is not None else shell.run_line_magic("aitk", line)
    assert type(e.value) is UsageError
    return str(e.value)


def test_an_unknown_parameter_in_the_cell_body_names_the_cell_body(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    msg = usage_error(shell, "provision --target local", '{"noSuchParam": 1}')
    assert msg.startswith("the cell body: parameter noSuchParam is not declared by the template (inference.json); "
                          "remove it from the cell body, or use one of: ")
    assert "parameters file" not in msg
    assert "the cell body: maximumInstanceCount must be" in usage_error(
        shell, "provision --target local", '{"maximumInstanceCount": 99}')
    assert not (project / "infra/inference.config.json").exists() and not (project / ".aitk").exists()


def test_an_unknown_parameter_in_the_file_still_names_the_file(shell, project, monkeypatch):
    import json

    monkeypatch.chdir(project)
    path = project / "infra/provision/inference.parameters.json"
    params = json.loads(path.read_text())
    params["parameters"]["noSuchParam"] = {"value": 1}
    path.write_text(json.dumps(params))
    assert "remove them from the parameters file" in usage_error(shell, "provision --target local")


def test_a_bad_location_option_is_named(capsys, project):
    rc, _, err = cli(capsys, "provision", "--project", str(project), "--location", "West Europe")
    assert rc == 1 and "aitk provision: error: --location: location must be an Azure region name" in err


# -- item 10: a mistyped option shows the verb's usage and the closest option -------------------------
def test_a_mistyped_option_shows_the_verb_usage_and_the_closest_option(capsys):
    rc, _, err = cli(capsys, "deploy", "--adapters", "X")
    assert rc == 2
    assert err.startswith("usage: aitk deploy [-h] [--adapter [NAME=]PATH]")
    assert err.rstrip().endswith("aitk deploy: error: unrecognized arguments: --adapters X; did you mean --adapter?")
    rc, _, err = cli(capsys, "logs", "--tial=3")
    assert rc == 2 and err.rstrip().endswith("unrecognized arguments: --tial=3; did you mean --tail?")
    rc, _, err = cli(capsys, "status", "extra")  # nothing close: no suggestion
    assert rc == 2 and err.rstrip().endswith("aitk status: error: unrecognized arguments: extra")


# -- item 11: the demo's help ---------------------------------------------------------------------------
def test_demo_help_has_a_description(capsys):
    rc, out, _ = cli(capsys, "demo", "--help")
    assert rc == 0 and "Run the whole flow on the local target" in out
    rc, out, _ = cli(capsys, "--help")
    assert "demo      Run the whole flow on the local target" in out


# -- item 12: the small ones ------------------------------------------------------------------------------
def test_import_time_help_does_not_stop_mid_sentence():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks/import_time.py"), "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert 'defers until a verb needs them (issue 4: "fast to\nload", target <= 150 ms).' in out
    assert "--samples SAMPLES  fresh interpreters per case" in out


def test_readme_counts_the_config_keys_provision_writes():
    from aitk_nb.config import CONFIG_KEYS

    readme = (REPO / "README.md").read_text()
    assert "(the six keys)" not in readme
    assert len(CONFIG_KEYS) == 7 and "the six AI Toolkit keys" in readme


# -- item 5: the README's begin_deploy snippet shows what it says ----------------------------------------
def test_an_operation_s_progress_prints_as_its_message():
    from IPython.lib.pretty import pretty

    from aitk_nb.operations import Progress

    progress = Progress("uploading: 12 MiB of 500 MiB", 12 / 500)
    assert str(progress) == pretty(progress) == "uploading: 12 MiB of 500 MiB" and progress.fraction == 0.024
    assert f"{progress}" == "uploading: 12 MiB of 500 MiB"


def test_a_cancelled_operation_s_result_raises_the_error_the_readme_catches():
    import threading

    import aitk_nb
    from aitk_nb.operations import Operation

    started = threading.Event()

    def work(op):
        started.set()
        while True:
            op.checkpoint("nothing was sent")
            threading.Event().wait(0.01)

    op = Operation.start("deploy", work)
    started.wait(5)
    assert op.cancel() is True
    with pytest.raises(aitk_nb.OperationCancelledError, match="deploy cancelled: nothing was sent"):
        op.result(timeout=5)
    assert op.status() == "Canceled"


# -- the README writes magics with a trailing comment, as a notebook user does --------------------------
def test_a_magic_line_may_end_with_a_comment(shell, project, monkeypatch):
    from helpers import free_port

    monkeypatch.chdir(project)
    port = free_port()
    shell.run_line_magic("aitk", f"provision --target local --port {port}   # the environment")
    assert str(shell.run_line_magic("aitk", "endpoint   # UI / API URLs")) == f"http://127.0.0.1:{port}"
    assert usage_error(shell, 'endpoint "#not a comment"') == "unrecognized arguments: #not a comment"  # quoted: an argument
    shell.run_line_magic("aitk", "teardown --yes  # done")
    assert not (project / "infra/inference.config.json").exists()
