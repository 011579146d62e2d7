"""`import aitk_nb` and `%load_ext aitk_nb` stay light (issue 4): the heavy libraries are imported
when a verb first needs them. Checked in a fresh interpreter, where sys.modules starts empty."""
import json
import subprocess
import sys

import pytest

HEAVY = ("azure", "gradio_client", "pandas", "ipywidgets", "matplotlib", "numpy", "httpx", "tqdm", "torch")

PROBE = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
before = set(sys.modules)
import aitk_nb
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "aitk_nb")
ip.find_line_magic("aitk").__doc__  # %aitk? builds the help from every verb's parser
new = set(sys.modules) - before
print(json.dumps(sorted(m for m in new if m.split(".")[0] in HEAVY)))
""".replace("HEAVY", repr(HEAVY))


def test_import_and_load_ext_pull_no_heavy_library():
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_the_heavy_libraries_come_when_a_form_is_built(tmp_path):
    probe = ("import sys, aitk_nb.widgets as w; assert 'ipywidgets' not in sys.modules; "
             "from aitk_nb.widgets.provision import ProvisionForm; print('ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "True"


@pytest.mark.parametrize("verb", ["init", "provision", "deploy", "status", "endpoint", "logs", "scale", "teardown", "eval",
                                  "demo"])
def test_every_cli_verb_has_help(verb, capsys):
    from aitk_nb.cli import main

    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: aitk {verb}")
    assert {"provision": "--what-if", "deploy": "--adapter [NAME=]PATH", "eval": "PROMPTS_FILE", "teardown": "--yes",
            "logs": "--tail N", "scale": "--stop", "demo": "--port", "init": "--migrate"}.get(verb, "--project") in out


def test_the_import_benchmark_runs_and_reports_every_case():
    from helpers import REPO

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/import_time.py"), "--samples", "1", "--json"],
                          capture_output=True, text=True, timeout=120)
    medians = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(medians) == {"import aitk_nb", "%load_ext aitk_nb", "import azure SDKs", "import gradio_client",
                            "import pandas", "import ipywidgets", "import matplotlib", "all deferred, eagerly"}
    assert all(isinstance(v, float) and v > 0 for v in medians.values()), medians  # every library is installed here
    load = max(medians["import aitk_nb"], medians["%load_ext aitk_nb"])
    # the exit code says whether the 150 ms target is met; the eager imports cost far more than loading
    assert proc.returncode == (0 if load <= 150 else 1)
    assert medians["all deferred, eagerly"] > 3 * load


def test_the_verb_list_gives_each_verbs_first_sentence(capsys):
    from aitk_nb.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "::" not in out
    assert ("Scale the app: replica bounds (azure target), or stop it and start it again (both targets)"
            in " ".join(out.split()))
