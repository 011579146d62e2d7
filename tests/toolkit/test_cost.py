"""The prices client and the evaluation's cost (issue 18), against the Azure Retail Prices API on
loopback (`prices_api`: the recorded Container Apps items, paged as the API pages them) and the fake
inference app of test_eval (real Gradio on loopback)."""
import json
import os
import time

import pytest

import aitk_nb
from aitk_nb import cost, prices
from aitk_nb.errors import AitkError
from helpers import keep_replicas_up
from test_eval import fake  # noqa: F401 - the fixture

CELL = '{"prompt": "capital of Quorvania?", "expected": "Zeltrin"}\ncapital of France?'


def test_every_page_is_read_once_then_the_cache_answers_for_a_day(prices_api, monkeypatch):
    price = prices.replica_price("Consumption-GPU-NC24-A100", "swedencentral")
    assert price.per_hour == pytest.approx(0.000952 * 3600 + 24 * 0.000024 * 3600 + 220 * 0.000003 * 3600)
    first = list(prices_api.requests)
    assert len(first) >= 2 and "%24skip=" in first[-1]  # more than one page, through NextPageLink
    assert "currencyCode=%27USD%27" in first[0] and "armRegionName+eq+%27swedencentral%27" in first[0]
    cached = list(prices.cache_dir().glob("container-apps-swedencentral-USD-*.json"))
    assert len(cached) == 1 and "Standard NC A100 v4 GPU Usage" in json.loads(cached[0].read_text())["hourly"]

    assert prices.replica_price("Consumption-GPU-NC8as-T4", "swedencentral").per_hour == pytest.approx(1.818)
    assert prices_api.requests == first  # the same region from the cache: no request

    data = json.loads(cached[0].read_text())
    data["fetched"] -= 24 * 3600 + 1  # a day old
    cached[0].write_text(json.dumps(data))
    prices.replica_price("Consumption-GPU-NC8as-T4", "swedencentral")
    assert len(prices_api.requests) == 2 * len(first)  # fetched again


def test_the_primary_pay_as_you_go_price_past_the_free_grant_is_used(prices_api):
    rates = prices.price_list("northeurope").hourly
    # the recorded list also has a non-primary copy of this meter at 99 and a dev/test price of 0
    assert rates["Standard Memory Active Usage"] == pytest.approx(0.000003 * 3600)
    assert rates["Standard vCPU Active Usage"] == pytest.approx(0.000024 * 3600)  # not the free tier's 0
    assert "Standard Requests" not in rates  # priced per million requests, not by time
    assert rates["Dedicated Plan Management"] == pytest.approx(0.10)


def test_the_currency_comes_from_the_flag_the_setting_or_the_environment(prices_api, monkeypatch):
    with prices.using_currency("eur"):
        assert prices.replica_price("Consumption-GPU-NC8as-T4", "swedencentral").describe().startswith("EUR 1.67 an hour")
    monkeypatch.setenv("AITK_CURRENCY", "EUR")
    assert prices.currency() == "EUR"
    aitk_nb.set_currency("usd")
    try:
        assert prices.currency() == "USD"
    finally:
        aitk_nb.set_currency(None)
    monkeypatch.setenv("AITK_CURRENCY", "euro")
    with pytest.raises(AitkError, match="AITK_CURRENCY 'EURO': the Azure Retail Prices API prices in USD, .* pick one"):
        prices.currency()
    with pytest.raises(AitkError, match="--currency 'XX'"):
        with prices.using_currency("xx"):
            pass


def test_offline_is_price_unknown_at_once_and_not_asked_again(monkeypatch):
    start = time.monotonic()
    price = prices.replica_price("Consumption-GPU-NC24-A100", "swedencentral")
    assert price.per_hour is None and "is out of reach" in price.unknown
    assert price.describe().startswith("price unknown: the Azure Retail Prices API (http://127.0.0.1:")
    assert time.monotonic() - start < 5
    assert prices.replica_price("Consumption-GPU-NC8as-T4", "swedencentral").unknown == price.unknown  # not asked again
    assert not list(prices.cache_dir().glob("*.json"))  # a failure is not cached as prices


def test_a_next_page_on_another_host_or_a_broken_answer_is_price_unknown(prices_api, monkeypatch):
    real = prices_api.answer

    def elsewhere(path):
        status, body = real(path)
        if body.get("NextPageLink"):
            body["NextPageLink"] = body["NextPageLink"].replace("127.0.0.1", "evil.example")
        return status, body

    monkeypatch.setattr(prices_api, "answer", elsewhere)
    assert "next page is on another host (evil.example" in prices.replica_price("NC24-A100", "westus3").unknown
    monkeypatch.setattr(prices_api, "answer", lambda path: (200, {"unexpected": True}))
    assert prices.replica_price("NC24-A100", "northeurope").unknown == (
        "the Azure Retail Prices API answered something that is not a price list")
    monkeypatch.setattr(prices_api, "answer", lambda path: (503, {}))
    assert prices.replica_price("NC24-A100", "eastus").unknown == "the Azure Retail Prices API answered HTTP 503"


def test_a_profile_aitk_nb_does_not_price_says_so():
    assert prices.replica_price("D4", "westus3").unknown.startswith("workload profile type 'D4' is not one aitk-nb prices")
    assert cost.plan("Consumption-GPU-NC8as-T4", "westus3", 0, 1, target="local").get("cost").startswith("free")


def project_at(project, url: str, target: str, **more) -> None:
    config = {"TARGET": target, "ACA_APP_ENDPOINT": url, **more}
    (project / "infra" / "inference.config.json").write_text(json.dumps(config))


def test_the_evaluation_on_the_local_target_is_free(fake, project):  # noqa: F811
    # an evaluation asks the local target for its replica first (and wakes it): a provisioned local
    # target whose replica is the fake app's process stands in for it; the meter reads only the target
    from aitk_nb.evaluation.result import EvalResult

    aitk_nb.provision("local", project=project, progress=False)
    meter = cost.RunMeter(aitk_nb.endpoint(project=project, fetch=False)._target)
    run = meter.stop(answered=True)
    assert str(run).startswith("free (local target")
    report = EvalResult([], ["base"], fake.url, cost=run)
    assert f"  run cost: {report.cost}" in str(report).splitlines()[1]
    assert "run cost</b>: free (local target" in report._repr_html_()
    assert aitk_nb.evaluate(CELL, endpoint=fake.url, progress=False).cost is None  # an endpoint given by URL


@pytest.mark.parametrize("overrides, per_hour", [
    ({"location": "swedencentral", "gpuWorkloadProfileType": "Consumption-GPU-NC24-A100"}, 7.8768),
    ({"location": "swedencentral", "gpuWorkloadProfileType": "Consumption-GPU-NC8as-T4"}, 1.818),
    ({"location": "westus3", "gpuWorkloadProfileType": "NC24-A100"}, 5.4704),
])
@pytest.mark.parametrize("min_replicas", [0, 1])
def test_the_evaluation_on_azure_costs_its_wall_time_times_the_replicas_price(azure, prices_api, fake, project,  # noqa: F811
                                                                            overrides, per_hour, min_replicas):
    if min_replicas:
        keep_replicas_up(project, min_replicas)
    aitk_nb.provision("azure", project=project, resource_group="rg-eval", overrides=overrides, progress=False)
    config = json.loads((project / "infra" / "inference.config.json").read_text())
    project_at(project, fake.url, "azure", **{k: v for k, v in config.items() if k not in ("TARGET", "ACA_APP_ENDPOINT")})
    start = time.monotonic()
    report = aitk_nb.evaluate(CELL, project=project, progress=False)
    took = time.monotonic() - start
    run = report.cost
    assert run.replicas == 1 and run.price.per_hour == pytest.approx(per_hour)
    assert 0 < run.seconds <= took and run.amount == pytest.approx(run.seconds / 3600 * per_hour)
    text = str(report)
    assert f"run cost: USD {run.amount:.4f} ({run.seconds:.0f} s x 1 replica x USD {per_hour:.2f} an hour, " in text, text
    assert overrides["gpuWorkloadProfileType"] in report._repr_html_().split("run cost</b>")[1][:400]
    assert report.to_pandas("summary")["run_cost"].iloc[0] == str(run)
    assert "accuracy" in text.splitlines()[2]  # beside accuracy and latency


def test_the_evaluation_on_azure_with_no_prices_says_price_unknown(azure, fake, project):  # noqa: F811
    aitk_nb.provision("azure", project=project, resource_group="rg-eval", overrides={"location": "swedencentral"}, progress=False)
    config = json.loads((project / "infra" / "inference.config.json").read_text())
    project_at(project, fake.url, "azure", **{k: v for k, v in config.items() if k not in ("TARGET", "ACA_APP_ENDPOINT")})
    report = aitk_nb.evaluate(CELL, project=project, progress=False)
    assert str(report.cost).startswith("price unknown: the Azure Retail Prices API (http://127.0.0.1:")
    assert report.cost.amount is None and "USD" not in str(report).splitlines()[1]
    assert os.environ["AITK_PRICES_URL"].startswith("http://127.0.0.1:")


def test_a_throttled_page_is_asked_again_after_retry_after(prices_api, monkeypatch):
    real, answers = prices_api.answer, []

    def throttled_once(path):
        answers.append(path)
        if len(answers) == 2:  # the second page, once
            return 429, {"Error": {"Code": "TooManyRequests"}}
        return real(path)

    monkeypatch.setattr(prices_api, "answer", throttled_once)
    assert prices.replica_price("Consumption-GPU-NC8as-T4", "swedencentral").per_hour == pytest.approx(1.818)
    assert answers[1] == answers[2]  # the same page again

