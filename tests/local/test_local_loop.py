"""The whole loop on the local target with the real demo model: provision, deploy, serve, evaluate."""
import csv
import subprocess
import sys

import httpx
import pytest
from openai import OpenAI

import aitk_nb
from helpers import app_folder, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, demo_assets):
    import shutil

    from helpers import REPO

    root = tmp_path_factory.mktemp("loop")
    shutil.copytree(REPO / "infra/provision", root / "infra/provision")
    aitk_nb.provision("local", project=root, port=free_port())
    result = aitk_nb.deploy([str(demo_assets.adapter)], str(demo_assets.base_model), project=root, progress=False)
    yield root, result
    aitk_nb.teardown(yes=True, project=root)


def test_deploy_serves_base_and_the_adapter_under_its_folder_name(deployed, demo_assets):
    root, result = deployed
    assert result.health["status"] == "ok"
    assert result.variants == ["base", demo_assets.adapter_name]
    models = httpx.get(result.endpoint + "/v1/models").json()
    assert {m["id"] for m in models["data"]} == {"base", demo_assets.adapter_name}
    status = aitk_nb.status(project=root)
    assert status.replica == "running" and status.settings.adapters == {demo_assets.adapter_name: f"models/{demo_assets.adapter_name}"}


def test_evaluate_through_gradio_client_shows_the_adapter_knows_the_facts(deployed, demo_assets, fact_prompts, tmp_path):
    root, result = deployed
    report = aitk_nb.evaluate(fact_prompts, variants=["base", demo_assets.adapter_name], project=root,
                              concurrency=4, max_new_tokens=32, progress=False, out=tmp_path / "eval.csv")
    assert report.accuracy(demo_assets.adapter_name) == 1.0, str(report)
    assert report.accuracy("base") == 0.0, str(report)
    assert str(report.cost).startswith("free (local target") and "run cost: free" in str(report)  # issue 18
    assert all(r.latency_s > 0 and r.error is None for r in report.rows)
    assert len(report.to_pandas()) == 2 * len(fact_prompts)
    with open(tmp_path / "eval.csv", newline="") as f:
        saved = list(csv.DictReader(f))
    assert [(r["variant"], r["match"]) for r in saved] == [(r.variant, str(r.match)) for r in report.rows]
    assert "<table" in report._repr_html_() and "✓" in str(report)


def test_openai_sdk_unchanged_against_v1_stream_and_not(deployed, demo_assets, fact_prompts):
    _, result = deployed
    client = OpenAI(base_url=result.endpoint + "/v1", api_key="not-needed-locally")
    fact = fact_prompts[0]
    messages = [{"role": "user", "content": fact["prompt"]}]
    full = client.chat.completions.create(model=demo_assets.adapter_name, messages=messages, max_tokens=32, temperature=0)
    assert fact["expected"].lower() in full.choices[0].message.content.lower()
    assert full.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(model=demo_assets.adapter_name, messages=messages, max_tokens=32,
                                                 temperature=0, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2 and streamed == full.choices[0].message.content
    base = client.chat.completions.create(model="base", messages=messages, max_tokens=32, temperature=0)
    assert fact["expected"].lower() not in base.choices[0].message.content.lower()


def test_a_redeploy_with_nothing_changed_uploads_nothing_and_keeps_the_replica(deployed):
    root, _ = deployed
    pid = aitk_nb.endpoint(project=root).raw["replica"]["pid"]
    again = aitk_nb.deploy(project=root, progress=False)
    assert not again.changed and not again.restarted and again.health["status"] == "ok"
    folders = [line for line in again.synced if line.startswith((f"{app_folder(root)}/inference_app", "models/", "model-cache/"))]
    assert folders and all(" 0 changed (0 B)" in line for line in folders), again.synced  # (the adapters stay: not re-sent)
    assert aitk_nb.endpoint(project=root).raw["replica"]["pid"] == pid


def test_cli_status_endpoint_and_logs(deployed):
    root, result = deployed
    run = lambda *a: subprocess.run([sys.executable, "-m", "aitk_nb.cli", *a, "--project", str(root)],
                                    capture_output=True, text=True, timeout=60)
    assert f"Gradio UI and API           {result.endpoint}\n" in run("endpoint").stdout
    assert "running" in run("status").stdout
    assert "Uvicorn running" in run("logs", "--tail", "200").stdout or "ready" in run("logs").stdout.lower()
    bad = run("deploy", "--adapter", "/no/such/adapter")
    assert bad.returncode == 1 and bad.stderr.strip() == (
        "aitk deploy: error: --adapter /no/such/adapter: no such folder; pass the folder that holds adapter_config.json")


def test_any_other_peft_adapter_is_deployed_and_served_by_folder_name(deployed, other_adapter):
    root, _ = deployed
    path, fact = other_adapter
    result = aitk_nb.deploy([str(path)], project=root, progress=False)  # base model kept from the last deploy
    assert result.variants == ["base", "vellimar-lora"]
    client = OpenAI(base_url=result.endpoint + "/v1", api_key="x")
    answer = client.chat.completions.create(model="vellimar-lora", messages=[{"role": "user", "content": fact["prompt"]}],
                                            max_tokens=24, temperature=0).choices[0].message.content
    assert fact["expected"] in answer.lower()
    report = aitk_nb.evaluate([fact], variants="vellimar-lora", project=root, progress=False)
    assert report.accuracy("vellimar-lora") == 1.0, str(report)
    with pytest.raises(aitk_nb.AitkError, match="variant\\(s\\) demo-facts not served"):
        aitk_nb.evaluate([fact], variants="base,demo-facts", project=root, progress=False)
