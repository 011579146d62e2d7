"""Evaluation of an app scaled to zero, against the Azure test double: the double has no replica until a
request comes to the ingress, holds requests while a replica starts, and answers 504 when its start takes
longer than the ingress's request timeout; evaluate wakes the app, shows the cold start, and only then
sends the prompts. A revision that fails to start is reported as failed, not as unreachable."""
import time

import httpx
import pytest

import aitk_nb
from azure_helpers import config_of
from fake_inference import FakeApp, serving

pytestmark = pytest.mark.timeout(300)

# the stand-in's answers: tuned knows both, base only France
PROMPTS = ['{"prompt": "capital of Quorvania?", "expected": "Zeltrin"}', '{"prompt": "capital of France?", "expected": "Paris"}']


@pytest.fixture
def server():
    """The stand-in of the replica's server (its OpenAI-compatible routes), behind the double's ingress."""
    with serving(FakeApp(), ui=False) as app:
        yield app


@pytest.fixture
def asleep(azure, project, small_assets, server):
    """A deployed app (the template's minReplicas is 0) after its cooldown: no replica."""
    aitk_nb.provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"}, progress=False)
    model, adapter = small_assets
    aitk_nb.deploy([str(adapter)], str(model), project=project, progress=False)
    name = config_of(project)["ACA_APP_NAME"]
    azure.set_app_upstream(name, server.url)
    azure.apps.cold_start_seconds = 4.0
    azure.apps.ingress_timeout_seconds = 1.5  # shorter than the start: one request cannot wait it out
    azure.apps.scale_to_zero(name)
    return name


def ingress_answers(azure, name: str, path: str) -> list[int]:
    return [r.status for r in azure.requests if r.path.startswith(f"/ingress/{name}{path}")]


def test_the_double_holds_a_request_that_wakes_the_app_then_answers_504(azure, asleep, project):
    app = aitk_nb.endpoint(project=project, fetch=False)
    assert app._target.app.state().replicas == 0  # the revision lists no replica while scaled to zero
    t0 = time.monotonic()
    r = httpx.get(app.health_url, verify=azure.client_ssl_context(), timeout=30)
    assert r.status_code == 504 and r.text == "upstream request timeout" and 1.4 < time.monotonic() - t0 < 3.5
    assert app._target.app.state().status.value == "Activating"  # the request started a replica
    time.sleep(3.0)
    assert httpx.get(app.health_url, verify=azure.client_ssl_context(), timeout=30).status_code == 200


def test_evaluate_wakes_an_app_scaled_to_zero_then_evaluates(azure, asleep, project, server, capsys):
    azure.clear_requests()
    report = aitk_nb.evaluate(PROMPTS, project=project, api="openai", variants="base,tuned")
    assert report.complete and report.failed == 0, str(report)
    assert report.accuracy("tuned") == 1.0 and report.accuracy("base") == 0.5
    assert 504 in ingress_answers(azure, asleep, "/health")  # the cold start outlasted a request
    assert ingress_answers(azure, asleep, "/v1/chat/completions") == [200] * 4  # prompts only once it was up
    assert len(server.asked) == 4
    err = capsys.readouterr().err
    assert "waking the endpoint (scaled to zero)" in err


def test_a_revision_that_fails_to_start_is_reported_as_failed(azure, asleep, project):
    azure.faults.revision_never_healthy(asleep)
    azure.apps.cold_start_seconds = 0.2
    with pytest.raises(aitk_nb.AitkError) as e:
        aitk_nb.evaluate(PROMPTS, project=project, api="openai", progress=False, wake_timeout=60)
    assert "Degraded" in str(e.value) and "cannot reach" not in str(e.value)



@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_real_replica_scaled_to_zero_is_woken_and_evaluated(azure, project, demo_assets, fact_prompts, capsys):
    """The same with the real server and model: the request that wakes the app starts the replica's process
    (the server's start and model load are the cold start)."""
    azure.run_replicas(env={"OMP_WAIT_POLICY": "PASSIVE"})
    aitk_nb.provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"}, progress=False)
    aitk_nb.deploy([str(demo_assets.adapter)], str(demo_assets.base_model), project=project, progress=False, timeout=600)
    name = config_of(project)["ACA_APP_NAME"]
    azure.apps.cold_start_seconds = 2.0
    azure.apps.ingress_timeout_seconds = 1.0
    azure.apps.scale_to_zero(name)
    assert azure.apps.runner.procs.get(name) is None  # no replica process while scaled to zero
    capsys.readouterr()
    report = aitk_nb.evaluate(fact_prompts[:3], project=project, max_new_tokens=24, wake_timeout=600)
    assert report.complete, str(report)
    assert report.accuracy(demo_assets.adapter_name) == 1.0 and report.accuracy("base") == 0.0, str(report)
    assert "waking the endpoint (scaled to zero)" in capsys.readouterr().err
