"""The README's snippets run as written, on the local target with the real demo model (issue 20: "every
README snippet runs as written").

Convention (for whoever adds a snippet to README.md):
- Every fenced block names its language. Blocks are run, in README order, in one project folder:
  - ```python: in one IPython shell (so `%aitk` and `%%aitk` magics work as in a notebook). A blank line
    separates notebook cells: a `%%aitk` cell magic takes the lines below it up to the next blank line.
    A cell that raises fails the test.
  - ```console: each line that starts with `$ ` is run with bash in the project folder (`aitk` is this
    environment's), and must exit 0.
  - ```text (or any other language: bicep, json, ...): shown, not run. For syntax with placeholders,
    Azure-only flows (the Azure target is tested against the double in tests/azure/), and cells run by
    another test (the fine-tuning hand-off: tests/local/test_finetuning_handoff.py).
- A python or console block is skipped only with `<!-- readme-test: skip: REASON -->` on the line before
  its fence; the reason is printed with the test's output.
- The project the snippets run in holds the repository's `infra/provision`, the demo base model as
  `models/base`, the demo adapter as `models/my-adapter` and `prompts.jsonl` (demo prompts with
  "expected"), the names the README uses.
- The one substitution: the port 7860 (the template's) becomes a free port, as this machine's own demo
  (or another test) may hold 7860.
"""
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import REPO, free_port

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
SKIP = re.compile(r"<!-- readme-test: skip: (?P<reason>.+?) -->")
RUN = ("python", "console")
PORT = "7860"


@dataclass
class Snippet:
    lang: str
    body: str
    line: int
    skip: str | None

    def where(self) -> str:
        return f"README.md:{self.line}"


def snippets(text: str) -> list[Snippet]:
    found = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        body = "\n".join(line[len(m["indent"]):] for line in m["body"].splitlines())
        found.append(Snippet(m["lang"], body, text[:m.start()].count("\n") + 1, skip and skip["reason"]))
    return found


def cells(body: str) -> list[str]:
    return [c for c in re.split(r"\n\s*\n", body) if c.strip()]


def test_every_readme_block_names_its_language_and_every_skip_a_reason():
    text = (REPO / "README.md").read_text()
    found = snippets(text)
    assert text.count("```") == 2 * len(found), "a fence the convention above does not read"
    assert not [s.where() for s in found if not s.lang], "a block without a language: python, console or text"
    assert text.count("readme-test: skip") == sum(1 for s in found if s.skip), "a skip mark not on a run block's line"
    assert not [s.where() for s in found if s.skip and s.lang not in RUN]
    run = [s for s in found if s.lang in RUN and not s.skip]
    assert {s.lang for s in run} == set(RUN), "the README shows both Python and the CLI"


@pytest.fixture
def readme_project(tmp_path, demo_assets, monkeypatch) -> Path:
    """A project with the names the README uses, as the working directory; torn down after."""
    root = tmp_path / "proj"
    shutil.copytree(REPO / "infra/provision", root / "infra/provision")
    (root / "models").mkdir()
    # a real folder named `base` (hard links: no copy of 500 MB), as a user's is; a link would be resolved
    # by deploy to the model's own folder name, which the adapter records
    shutil.copytree(demo_assets.base_model, root / "models/base", copy_function=os.link)
    shutil.copytree(demo_assets.adapter, root / "models/my-adapter")
    facts = [line for line in (REPO / "demo/eval.jsonl").read_text().splitlines() if '"expected"' in line][:2]
    (root / "prompts.jsonl").write_text("\n".join(facts) + "\n")
    monkeypatch.chdir(root)
    yield root
    if (root / "infra/inference.config.json").exists():
        import aitk_nb

        aitk_nb.teardown(yes=True, project=root, show=None)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_readme_snippets_run_as_written(readme_project, shell, capsys):
    port = str(free_port())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    skipped = []
    ran = 0
    for snippet in snippets((REPO / "README.md").read_text()):
        if snippet.lang not in RUN:
            continue
        if snippet.skip:
            skipped.append(f"{snippet.where()}: {snippet.skip}")
            continue
        body = snippet.body.replace(PORT, port)
        if snippet.lang == "console":
            for command in [line[2:] for line in body.splitlines() if line.startswith("$ ")]:
                run = subprocess.run(["bash", "-c", command], cwd=readme_project, env=env, capture_output=True,
                                     text=True, timeout=600)
                assert run.returncode == 0, f"{snippet.where()}: `{command}` exited {run.returncode}:\n{run.stderr}"
                ran += 1
            continue
        for cell in cells(body):
            result = shell.run_cell(cell)
            assert result.success, f"{snippet.where()}: the cell\n{cell}\nraised {result.error_before_exec or result.error_in_exec!r}"
            ran += 1
    out = capsys.readouterr().out
    print("skipped:", *skipped, sep="\n  ")
    assert ran >= 15
    # what the snippets say they show
    assert f"OpenAI-compatible base URL  http://127.0.0.1:{port}/v1" in out  # %aitk endpoint / aitk endpoint
    assert "my-adapter" in out and "accuracy" in out.lower()  # the evaluation report
    assert not (readme_project / ".aitk/local").exists()  # every flow ends with its teardown
