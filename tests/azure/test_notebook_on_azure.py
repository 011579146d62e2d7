"""notebooks/remote_inference.ipynb with `--target azure`, against the Azure test double, executed by a
real kernel: the same cells as on the local target. The double runs each revision for real (the
container's command over the share's folder, behind the app's HTTPS ingress), so deploy waits for
the real server, and eval, the OpenAI cell and logs go through the ingress with the app's API key."""
import pytest

from helpers import execute_notebook, notebook_project, outputs, tagged

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_notebook_flow_runs_on_the_azure_target(azure, tmp_path, demo_assets, monkeypatch):
    root = notebook_project(tmp_path)
    azure.run_replicas(env={"OMP_WAIT_POLICY": "PASSIVE"})
    monkeypatch.setenv("AITK_TARGET_OPTIONS", "--target azure --resource-group rg-notebook --location eastus")
    monkeypatch.setenv("SSL_CERT_FILE", azure.ca_bundle)  # httpx (gradio_client, openai) trusts the double's CA
    monkeypatch.delenv("AITK_API_KEY", raising=False)
    nb = execute_notebook(root, "remote_inference.azure.executed.ipynb")

    for cell in nb.cells:
        assert not any(o.get("output_type") == "error" for o in cell.get("outputs", [])), outputs(cell)
    assert "Provisioned the azure target" in outputs(tagged(nb, "provision"))
    deploy = outputs(tagged(nb, "deploy"))
    assert "Deployed to the azure target" in deploy and demo_assets.adapter_name in deploy
    report = outputs(tagged(nb, "eval"))
    assert "✓" in report and "✗" in report and "aitk-eval" in report
    assert "Zeltrin" in outputs(tagged(nb, "openai"))  # the adapter's fact, through the ingress with the API key
    assert "Tore down the azure target" in outputs(tagged(nb, "teardown"))
    assert not azure.state.of_type("Microsoft.App/containerApps")

    # the app's key was used (requests without it are refused) and shown nowhere
    key_requests = [r for r in azure.requests if r.path.startswith("/ingress/") and r.status == 401]
    assert not key_requests, key_requests[:3]
    text = "\n".join(outputs(c) for c in nb.cells)
    for secret in azure.state.secret_strings():
        assert secret not in text
    for f in root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(s.encode() in data for s in azure.state.secret_strings() if len(s) >= 8), f
