"""`%aitk logs` on the azure target, against the double's log streams: the console log (what the
container printed, as `az containerapp logs show` shows it), and `--follow` through a stream that the
service cuts every few lines for over a minute while the app keeps writing (issue 10, item 4)."""
import threading

import pytest

import aitk_nb
from azure_helpers import config_of

pytestmark = pytest.mark.timeout(300)


def provision(project):
    aitk_nb.provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"}, progress=False)
    return config_of(project)["ACA_APP_NAME"]


def test_logs_show_what_the_container_printed(azure, project):
    app = provision(project)
    for i in range(5):
        azure.state.add_log(app, f"step {i}")
    assert str(aitk_nb.logs(tail=3, project=project)).splitlines() == ["step 2", "step 3", "step 4"]
    text = str(aitk_nb.logs(project=project))
    assert "Uvicorn running on" in text and "Connecting to the container" not in text  # not the service's greeting
    assert "ContainerStarted" not in text  # the system log's events are not the console's


@pytest.mark.slow
def test_follow_shows_every_line_once_through_a_minute_of_cut_streams(azure, project):
    app = provision(project)
    endpoint = aitk_nb.endpoint(project=project, fetch=False)
    azure.log_follow_seconds = 3.0
    azure.faults.cut_log_stream(every=12, for_seconds=66)  # the service's two greeting lines count
    count = 330
    seen: list[str] = []
    errors: list[Exception] = []
    following = threading.Event()

    def follow():
        try:
            for line in endpoint.follow_logs(300):
                following.set()
                if line.startswith("tick "):
                    seen.append(line)
                if line == f"tick {count - 1}":
                    return
        except Exception as e:  # noqa: BLE001 - shown by the assertion below
            errors.append(e)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert following.wait(30)  # the log so far is shown: from now on every line is one written while following
    writer = azure.state.write_logs(app, interval=0.2, count=count, prefix="tick")  # 66 s of writing
    writer.join(120)
    reader.join(60)
    assert not reader.is_alive() and not errors, f"stopped following after {len(seen)} lines: {errors}"
    assert seen == [f"tick {i}" for i in range(count)]  # in order, none lost, none twice
    streams = [r for r in azure.requests if r.kind == "logstream"]
    assert len(streams) > count / 10  # cut again and again (at most 10 of the app's lines a connection)
