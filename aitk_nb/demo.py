"""The demo: SmolLM2-135M-Instruct and a LoRA adapter that learned invented facts, deployed to the
local target and evaluated base vs fine-tuned. The assets are built by `demo/build_assets.py` (packaged
with the toolkit, aitk_nb/packaged.py), which needs torch; it runs in a subprocess so the toolkit itself
never imports torch. The demo's project is the current one (an empty folder will do)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import packaged
from .errors import AitkError


@dataclass(frozen=True)
class DemoAssets:
    base_model: Path
    adapter: Path
    eval_prompts: Path

    @property
    def adapter_name(self) -> str:
        return self.adapter.name


def demo_assets(python: str | None = None) -> DemoAssets:
    """Build (first time, ~1 min) or reuse the cached demo base model and adapter."""
    demo_dir = packaged.path(packaged.DEMO)
    script = demo_dir / "build_assets.py"
    if not script.is_file():
        raise AitkError(f"{script} not found: this aitk-nb was installed without its demo; reinstall aitk-nb")
    # progress goes to stderr, which we pass through; the last stdout line is the JSON answer
    proc = subprocess.run([python or sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        raise AitkError(f"building the demo assets failed (exit {proc.returncode}); see the messages above")
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    return DemoAssets(Path(answer["base_model"]), Path(answer["adapter"]), demo_dir / "eval.jsonl")


def run_demo(*, port: int | None = None, project: str | None = None) -> None:
    from .evaluation import evaluate
    from .project import find_project
    from .verbs import deploy, provision

    def step(text: str) -> None:
        print(f"\n== {text}", flush=True)

    step("1/4 demo assets: base model (converted from GGUF) and a LoRA adapter fine-tuned on invented facts")
    assets = demo_assets()
    print(f"base model: {assets.base_model}\nadapter:    {assets.adapter}")
    proj = find_project(project)  # the current project, or this folder when there is none (an empty one will do)
    project = str(proj.root)
    print(f"project: {project}" + (f" ({proj.how_found})" if proj.how_found else ""))
    step("2/4 provision the local target")
    print(provision("local", project=project, port=port))
    step("3/4 deploy the inference app with the adapter")
    result = deploy([str(assets.adapter)], str(assets.base_model), project=project)
    print(result)
    step("4/4 evaluate base vs fine-tuned through the Gradio API")
    report = evaluate(assets.eval_prompts.read_text(), variants=["base", assets.adapter_name], endpoint=result.endpoint,
                      concurrency=2)
    print(report)
    print(f"\nThe endpoint keeps running at {result.endpoint} (Gradio UI; OpenAI API at {result.endpoint}/v1).")
    print(stop_hint(project))


def stop_hint(project: str | os.PathLike) -> str:
    """How to stop the demo's endpoint, as a command that works from anywhere (issue 20, item 11): the
    project named, and the aitk the demo ran as when `aitk` on PATH is not it. `make stop` only for
    the aitk-nb checkout's own project, which is what it tears down."""
    import shutil

    program = "aitk"
    ran = Path(sys.argv[0])
    if ran.name == "aitk" and (shutil.which("aitk") is None or Path(shutil.which("aitk")).resolve() != ran.resolve()):
        program = shlex.quote(str(ran.resolve()))
    teardown = f"`{program} teardown --yes --project {shlex.quote(str(Path(project).resolve()))}`"
    checkout = packaged.root()
    if checkout.name != packaged.PACKAGED_DIR and Path(project).resolve() == checkout.resolve():
        return f"Stop it with `make stop` in {shlex.quote(str(checkout))}, or {teardown}."
    return f"Stop it with {teardown}."
