"""Writes notebooks/remote_inference.ipynb (unexecuted). Run after changing demo/eval.jsonl."""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
eval_lines = (REPO / "demo/eval.jsonl").read_text().strip()


def code(src, tag=None):
    c = new_code_cell(src)
    if tag:
        c.metadata["tags"] = [tag]
    return c


cells = [
    new_markdown_cell("# Remote inference for a fine-tuned model\n\n"
                      "Provision an inference environment, deploy a base model with a LoRA adapter, and compare "
                      "base vs fine-tuned answers — all from this notebook. This runs on the **local target** "
                      "(no Azure account needed); `--target azure` runs the same flow on Azure Container Apps."),
    code("%load_ext aitk_nb\nimport os\n\nport = int(os.environ.get(\"AITK_PORT\", \"7860\"))  # the local endpoint's port\n"
         "# where to provision: the local target unless AITK_TARGET_OPTIONS says otherwise, e.g.\n"
         "# \"--target azure --resource-group rg-aitk --location swedencentral\" (after `az login`)\n"
         "target = os.environ.get(\"AITK_TARGET_OPTIONS\") or f\"--target local --port {port}\""),
    new_markdown_cell("## 1. The model and the adapter\n\nThe demo base model is SmolLM2-135M-Instruct; the adapter "
                      "is a LoRA fine-tune on a few invented facts the base model cannot know. Both are built once "
                      "and cached. With your own fine-tune, point `--model` and `--adapter` at its folders."),
    code("from aitk_nb.demo import demo_assets\nassets = demo_assets()\nassets", "assets"),
    new_markdown_cell("## 2. Provision\n\nCreates the environment from `infra/provision/inference.json` and the parameters "
                      "file, and writes `infra/inference.config.json`. `%aitk provision` with no options shows a form "
                      "(target, names checked as you type, Preview / Provision / Save parameters); the same with "
                      "options runs directly. `--what-if` previews without changing anything."),
    code("%aitk provision", "provision-form"),
    code("%aitk provision $target --what-if"),
    code("%aitk provision $target", "provision"),
    new_markdown_cell("## 3. Deploy\n\nSyncs the inference app, the base model and the adapter to the share (only changed "
                      "files), restarts the replica and waits until `/health` answers. The adapter is served under its "
                      "folder name. `%aitk deploy` alone offers the adapters it finds (the project's `models/` and the "
                      "cache); `%aitk` alone shows the status card."),
    code("%aitk deploy", "deploy-form"),
    code("%aitk deploy --model \"{assets.base_model}\" --adapter \"{assets.adapter}\"", "deploy"),
    code("%aitk", "status"),
    code("%aitk endpoint", "endpoint"),
    new_markdown_cell("## 4. Evaluate base vs fine-tuned\n\nOne prompt per line, or JSON lines with an `expected` answer "
                      "and an optional `group` (here the *facts* the adapter learned, and general-knowledge *controls*). "
                      "Each prompt runs against each variant through the Gradio API; the report shows every answer, "
                      "accuracy per variant and per group, latency p50/p95, words/s and a plot. Options: "
                      "`--scoring exact`, `--api openai` (the OpenAI route, which reports token counts), "
                      "`--out FILE` (.csv or .jsonl). *Kernel › Interrupt* stops a long evaluation and keeps the "
                      "answers received. In Python, `aitk_nb.evaluate(prompts, scoring=my_function)` scores with your "
                      "own function."),
    code(f"%%aitk eval --variants base,{{assets.adapter_name}} --max-new-tokens 32 --out eval_results.csv\n{eval_lines}".replace(
        "{assets.adapter_name}", "demo-facts"), "eval"),
    code("report = _\n{v: report.accuracy(v) for v in report.variants}", "accuracy"),
    code("report.to_pandas()[[\"prompt\", \"variant\", \"group\", \"answer\", \"match\", \"latency_s\"]]"),
    code("report.to_pandas(\"groups\").pivot(index=\"group\", columns=\"variant\", values=\"accuracy\")", "groups"),
    new_markdown_cell("## 5. The OpenAI-compatible API\n\nAny OpenAI client works against `/v1`; `model` picks the "
                      "adapter (or `base`)."),
    code("import aitk_nb\nfrom openai import OpenAI\n\n"
         "client = OpenAI(base_url=aitk_nb.endpoint().openai_base_url, api_key=aitk_nb.endpoint().api_key() or \"none\")\n"
         "reply = client.chat.completions.create(\n"
         "    model=assets.adapter_name,\n"
         "    messages=[{\"role\": \"user\", \"content\": \"What is the capital of Quorvania?\"}],\n"
         "    max_tokens=32, temperature=0,\n)\n"
         "print(reply.choices[0].message.content)", "openai"),
    new_markdown_cell("## 6. Logs and teardown"),
    code("%aitk logs --tail 5", "logs"),
    code("%aitk teardown --yes", "teardown"),
]
nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
})
nbformat.write(nb, REPO / "notebooks/remote_inference.ipynb")
