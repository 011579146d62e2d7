"""The deployment as an object (`aitk_nb.endpoint()`), on the local target with a real replica process:
a small stand-in server started by the template's command, which answers its health route after a
delay (the inference app needs the model; these tests are about the object and the readiness wait)."""
import json
import time

import pytest

import aitk_nb
from aitk_nb.endpoints import EndpointStatus
from aitk_nb.errors import NotProvisionedError, ReadinessTimeoutError, ReplicaCrashedError
from helpers import STANDIN, free_port


def provision(project, *commands):
    overrides = {"defaultCommands": list(commands)} if commands else None
    aitk_nb.provision("local", project=project, port=free_port(), overrides=overrides, progress=False)


def standin(project, delay=0.5):
    script = project / "standin.py"
    script.write_text(STANDIN)
    return f'STANDIN_DELAY={delay} "$AITK_PYTHON" {script}'


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder


def test_the_endpoint_keeps_its_record_and_status_and_its_verbs_chain(project, model):
    provision(project, standin(project, delay=1.0))
    app = aitk_nb.endpoint(project=project)
    assert app.status is EndpointStatus.STOPPED and not app.ready and app.raw["replica"] is None
    assert app.raw["app"]["readiness_path"] == "/health" and app.url.startswith("http://127.0.0.1:")
    with pytest.raises(NotProvisionedError, match="no replica is running; run `%aitk deploy`"):
        app.wait(timeout=30, progress=False)  # nothing will start by itself: said at once, not at the limit

    aitk_nb.deploy(model=str(model), project=project, restart=False, progress=False)
    t0 = time.monotonic()
    assert app.restart() is app and app.wait(timeout=30, progress=False) is app  # verbs return self
    assert time.monotonic() - t0 >= 1.0  # ready when /health answers 200, not when the process runs
    assert app.status is EndpointStatus.RUNNING and app.ready and app.health["model"] == "standin"
    first = app.raw["replica"]["pid"]

    again = aitk_nb.endpoint(project=project)  # a new object reads the same app
    assert again.status == "Running" and again.ready and again.raw["replica"]["pid"] == first  # a str enum
    assert again.restart().wait(timeout=30, progress=False).raw["replica"]["pid"] != first
    assert "stand-in listening" in str(again.logs(tail=50)) and "request /health" in str(again.logs(tail=50))
    assert again.api_key() is None and again.openai_base_url == again.url + "/v1"

    card = again.teardown()
    assert "replica stopped" in str(card) and not (project / "infra/inference.config.json").exists()
    assert again.status is EndpointStatus.STOPPED


def test_a_replica_that_exits_is_reported_at_once_with_its_log(project, model):
    provision(project, "echo loading", "echo 'fatal: no GPU' >&2", "exit 4")
    aitk_nb.deploy(model=str(model), project=project, restart=False, progress=False)
    app = aitk_nb.endpoint(project=project, fetch=False).restart()
    t0 = time.monotonic()
    with pytest.raises(ReplicaCrashedError) as e:
        app.wait(timeout=60, progress=False)
    assert time.monotonic() - t0 < 10
    assert "the replica exited with code 4 before /health answered" in str(e.value)
    assert "loading\nfatal: no GPU" in str(e.value)
    assert app.status is EndpointStatus.FAILED


def test_the_wait_has_a_limit_and_its_error_is_a_timeout_error(project, model):
    provision(project, standin(project, delay=60))
    aitk_nb.deploy(model=str(model), project=project, restart=False, progress=False)
    app = aitk_nb.endpoint(project=project, fetch=False).restart()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as e:
        app.wait(timeout=1.5, progress=False)
    assert isinstance(e.value, ReadinessTimeoutError) and time.monotonic() - t0 < 10
    assert "/health did not answer 200 within 2 s (HTTP 503" in str(e.value)
    assert app.status is EndpointStatus.RUNNING and not app.ready  # the process runs; it does not serve
    aitk_nb.teardown(yes=True, project=project)


def test_status_values_are_the_service_s_own():
    assert EndpointStatus("Degraded") is EndpointStatus.DEGRADED and EndpointStatus.RUNNING == "Running"
    assert EndpointStatus("SomethingNew") is EndpointStatus.UNKNOWN  # a value this version does not know
