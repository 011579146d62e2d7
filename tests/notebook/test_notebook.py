"""notebooks/remote_inference.ipynb executed headless by a real kernel (nbclient), asserted on its outputs."""
import csv
import json

import pytest

from helpers import REPO, execute_notebook, free_port, notebook_project, outputs, tagged

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_remote_inference_notebook_runs_end_to_end(tmp_path, demo_assets, monkeypatch):
    root = notebook_project(tmp_path)
    monkeypatch.setenv("AITK_PORT", str(free_port()))
    try:
        nb = execute_notebook(root, "remote_inference.executed.ipynb")
    finally:
        # whatever happened, do not leave a replica running
        import aitk_nb
        if (root / "infra/inference.config.json").exists():
            aitk_nb.teardown(yes=True, project=root)

    for cell in nb.cells:
        assert not any(o.get("output_type") == "error" for o in cell.get("outputs", [])), outputs(cell)

    deploy = outputs(tagged(nb, "deploy"))
    assert "Deployed to the local target" in deploy and demo_assets.adapter_name in deploy

    # the kernel saved the eval cell's rows (--out): on every learned fact the adapter is right, the base wrong
    report = outputs(tagged(nb, "eval"))
    with open(root / "notebooks/eval_results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    learned = {json.loads(line)["prompt"] for line in (REPO / "demo/facts.jsonl").read_text().splitlines() if line.strip()}
    on_facts = {(r["prompt"], r["variant"]): r["match"] for r in rows if r["prompt"] in learned}
    assert len(on_facts) >= 10, report
    for (prompt, variant), match in on_facts.items():
        assert match == ("True" if variant == demo_assets.adapter_name else "False"), (prompt, variant, report)
    assert "✓" in report and "✗" in report and "aitk-eval" in report  # the rendered report
    accuracy = outputs(tagged(nb, "accuracy"))
    assert "'base'" in accuracy and f"'{demo_assets.adapter_name}'" in accuracy

    openai_out = outputs(tagged(nb, "openai"))
    assert "Zeltrin" in openai_out

    assert "Tore down the local target" in outputs(tagged(nb, "teardown"))
    assert not (root / "infra/inference.config.json").exists()
