"""The log streams as `az containerapp logs show` reads them: a replica container's console log
(logStreamEndpoint: greeting, tail, follow, text and json lines) and the app's system log
(eventStreamEndpoint), with the fault that cuts a stream again and again while the app keeps
writing, for clients that must reconnect without losing or repeating lines."""
from __future__ import annotations

import json
import time

import httpx
import pytest

from azure_double.clients import clients
from azure_double.scenario import provision

RG = "rg-logs"


@pytest.fixture
def app(azure_double):
    provision(azure_double, RG, "app1")
    _, _, apps, _, _ = clients(azure_double)
    token = apps.container_apps.get_auth_token(RG, "app1").token
    rev = apps.container_apps.get(RG, "app1").latest_revision_name
    replica = apps.container_apps_revision_replicas.list_replicas(RG, "app1", rev).value[0]
    http = httpx.Client(verify=azure_double.client_ssl_context(), headers={"Authorization": f"Bearer {token}"},
                        timeout=httpx.Timeout(10.0))
    yield azure_double, apps, http, replica
    http.close()


def test_console_log_of_a_replica(app):
    double, apps, http, replica = app
    url = replica.containers[0].log_stream_endpoint
    assert httpx.get(url, verify=double.client_ssl_context()).status_code == 401       # the getAuthtoken token is required
    lines = [json.loads(x) for x in http.get(url, params={"tailLines": 10}).text.splitlines()]
    assert [x["Log"] for x in lines[:2]] == ["Connecting to the container 'inference'...",
                                              f"Successfully Connected to container: 'inference' [Revision: "
                                              f"'{replica.name.rsplit('-', 2)[0]}', Replica: '{replica.name}']"]
    assert lines[-1]["Log"].startswith("INFO:     Uvicorn running on") and lines[-1]["TimeStamp"].endswith("+00:00")
    text = http.get(url, params={"tailLines": 1, "output": "text"}).text.splitlines()
    assert len(text) == 3 and text[-1].split(" ", 1)[1].startswith("INFO:     Uvicorn running on")
    for i in range(400):
        double.state.add_log("app1", f"n{i}")
    capped = http.get(url, params={"tailLines": 1000}).text.splitlines()
    assert len(capped) == 2 + 300 and json.loads(capped[-1])["Log"] == "n399"        # tail capped at 300 lines
    assert http.get(url, params={"tailLines": 0}).text.count("\n") == 2
    # follow: what is written after the tail arrives; the stream ends after the double's idle time
    double.log_follow_seconds = 0.5
    got = []
    with http.stream("GET", url, params={"tailLines": 0, "follow": "true", "output": "text"}) as s:
        for line in s.iter_lines():
            got.append(line)
            if len(got) == 2:
                double.state.add_log("app1", "a new line")
    assert got[-1].endswith(" a new line")


def test_a_restart_makes_a_new_replica_with_its_own_log(app):
    double, apps, http, replica = app
    double.state.add_log("app1", "before the restart")
    apps.container_apps_revisions.restart_revision(RG, "app1", replica.name.rsplit("-", 2)[0])
    new = apps.container_apps_revision_replicas.list_replicas(RG, "app1", replica.name.rsplit("-", 2)[0]).value[0]
    assert new.name != replica.name
    text = http.get(new.containers[0].log_stream_endpoint, params={"tailLines": 50, "output": "text"}).text
    assert "before the restart" not in text and "Uvicorn running" in text
    assert http.get(replica.containers[0].log_stream_endpoint, params={"tailLines": 5}).status_code == 404


def test_system_log_of_the_app(app):
    double, apps, http, replica = app
    url = apps.container_apps.get(RG, "app1").event_stream_endpoint
    events = [json.loads(x) for x in http.get(url, params={"tailLines": 20}).text.splitlines()]
    assert {"TimeStamp", "Type", "ContainerAppName", "RevisionName", "ReplicaName", "Msg", "Reason", "EventSource", "Count"} <= set(events[0])
    assert [e["Reason"] for e in events] == ["ReplicaScheduled", "ContainerCreated", "ContainerStarted"]
    assert events[0]["ReplicaName"] == replica.name
    assert "Uvicorn" not in http.get(url, params={"tailLines": 20}).text          # console output is not a system event


def test_a_stream_cut_every_few_lines_while_the_app_keeps_writing(app):
    """For 1.5 s every connection is cut after 4 lines (greeting included) while the app writes a
    line every 10 ms; a client that reconnects with enough tail and drops what it has seen gets
    every line once. The cut is repeated, not a one-off."""
    double, apps, http, replica = app
    url = replica.containers[0].log_stream_endpoint
    double.log_follow_seconds = 0.3
    double.faults.cut_log_stream(every=4, for_seconds=1.5)
    window_ends = time.monotonic() + 1.5
    writer = double.state.write_logs("app1", interval=0.01, count=200, prefix="tick")
    seen: list[str] = []
    cuts = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with http.stream("GET", url, params={"tailLines": 300, "follow": "true", "output": "json"}) as s:
                for raw in s.iter_lines():
                    line = json.loads(raw)["Log"]
                    if line.startswith("tick ") and line not in seen:
                        seen.append(line)
        except httpx.HTTPError:
            cuts += 1
            continue
        if not writer.is_alive() and len(seen) == 200:
            break
    writer.join(5)
    assert cuts >= 5                                   # cut again and again, not once
    assert seen == [f"tick {i}" for i in range(200)]   # in order, none lost, none twice
    time.sleep(max(0.0, window_ends - time.monotonic()))
    assert len(http.get(url, params={"tailLines": 50}).text.splitlines()) == 52    # the window over, streams run whole
