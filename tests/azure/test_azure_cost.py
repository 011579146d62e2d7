"""What it costs (issue 18), on the azure target against the test double, priced from the recorded
Azure Retail Prices pages served on loopback (`prices_api`): the provision plan (the card, the what-if,
the form) for a serverless A100, a serverless T4 and a dedicated A100 profile with minReplicas 0 and 1;
status, the status card and `Endpoint` while it runs, the idle-GPU flag and scaled to zero; and
"price unknown" when the API is out of reach or does not list the region.

The figures are the recorded prices: A100 serverless 0.000952/s GPU + 24 vCPU x 0.000024/s + 220 GiB x
0.000003/s = 7.8768 an hour; T4 serverless 0.000145/s + 8 vCPU + 56 GiB = 1.818; dedicated NC24-A100
3.00/h GPU + 24 x 0.0571 + 220 x 0.0050 = 5.4704 a node-hour, plan fee 0.10/h. 730 h a month."""
import json
import time

import pytest

import aitk_nb
from aitk_nb import cli
from helpers import keep_replicas_up

pytestmark = pytest.mark.timeout(300)

A100 = {"location": "swedencentral", "gpuWorkloadProfileType": "Consumption-GPU-NC24-A100"}
T4 = {"location": "swedencentral", "gpuWorkloadProfileType": "Consumption-GPU-NC8as-T4"}
DEDICATED = {"location": "westus3", "gpuWorkloadProfileType": "NC24-A100"}
# profile -> (a replica-hour, minReplicas 1 for a month, maxReplicas 2 for a month)
FIGURES = {
    "a100": (A100, "USD 7.88 an hour per replica (A100 GPU 3.43 + 24 vCPU 2.07 + 220 GiB 2.38)", "USD 5,750.06", "USD 11,500.13"),
    "t4": (T4, "USD 1.82 an hour per replica (T4 GPU 0.52 + 8 vCPU 0.69 + 56 GiB 0.60)", "USD 1,327.14", "USD 2,654.28"),
    "dedicated": (DEDICATED, "USD 5.47 an hour per node (A100 GPU 3.00 + 24 vCPU 1.37 + 220 GiB 1.10)", "USD 3,993.39",
                  "USD 7,986.78"),
}


@pytest.mark.parametrize("kind", FIGURES)
@pytest.mark.parametrize("min_replicas", [0, 1])
def test_the_what_if_prices_the_profile_and_says_what_the_scale_settings_mean(azure, prices_api, project, kind, min_replicas):
    overrides, per_hour, month_min, month_max = FIGURES[kind]
    if min_replicas:
        keep_replicas_up(project, min_replicas)
    plan = aitk_nb.provision("azure", project=project, resource_group="rg-cost", overrides={**overrides, "maximumInstanceCount": 2},
                             what_if=True, progress=False)
    card = str(plan)
    assert plan.cost.get("price").startswith(per_hour), card
    assert f"{overrides['gpuWorkloadProfileType']} in {overrides['location']}" in plan.cost.get("price")
    assert plan.cost.get("worst case").startswith(f"2 replicas up all month (maxReplicas 2): {month_max} a month"), card
    if min_replicas == 0:
        assert not plan.cost.notes
        idle = plan.cost.get("while idle")
        assert idle.startswith("no node" if kind == "dedicated" else "nothing"), card
        assert "keeps" not in card
        if kind == "dedicated":  # the plan fee goes on with no node
            assert "management fee, USD 0.10 an hour (USD 73.00 a month)" in idle
            assert plan.cost.get("worst case").endswith("plus the plan fee USD 73.00")
    else:
        assert plan.cost.get("while idle").startswith(f"at least 1 x USD {per_hour.split()[1]} x 730 h = {month_min} a month, "
                                                      "idle or not (minReplicas 1)"), card
        warning = plan.cost.notes[0]
        assert warning.startswith("this plan keeps 1 GPU replica up while idle (minReplicas 1)") and month_min in warning
        assert "`%aitk scale --min 0" in warning and warning.endswith("` lets it scale to zero when idle")
        assert warning in card and "nothing changed" in card.splitlines()[0]  # before anything is made
    assert not azure.state.of_type("Microsoft.App/containerApps")


def test_the_provision_card_the_magic_and_the_form_show_the_price(azure, prices_api, project, shell):
    pytest.importorskip("ipywidgets")
    from aitk_nb.widgets.provision import ProvisionForm

    keep_replicas_up(project)
    preview = shell.run_line_magic("aitk", f"provision --target azure --resource-group rg-cost --location swedencentral "
                                           f"--what-if --currency EUR --project {project}")
    # the template's default profile (a serverless T4), at 0.92 x the USD prices
    assert preview.cost.get("price").startswith("EUR 1.67 an hour per replica (T4 GPU 0.48"), str(preview)
    assert "EUR 1,220.97 a month" in preview.cost.notes[0] and "`%aitk scale --min 0" in preview.cost.notes[0]
    assert "EUR 1,220.97" in preview._repr_html_()

    form = ProvisionForm(project=project, target="azure")
    form.resource_group.value = "rg-form"
    form.fields["location"].value = "swedencentral"
    form.preview_button.click()
    form.runner.wait(240)
    assert form.runner.last_error is None, form.message.value
    shown = "".join(str(o.get("data", {}).get("text/html", "")) for o in form.output.outputs)
    assert "What it costs" in shown and "an hour per replica" in shown, shown[-2000:]
    assert "keeps 1 GPU replica up while idle" in shown

    made = aitk_nb.provision("azure", project=project, resource_group="rg-cost", overrides=A100, progress=False)
    assert made.cost.get("price").startswith(FIGURES["a100"][1]) and "USD 5,750.06" in made.cost.notes[0]
    assert made.cost.notes[0] in str(made)


def test_status_and_the_endpoint_show_the_replicas_up_their_price_and_the_idle_flag(azure, prices_api, project, capsys):
    keep_replicas_up(project)  # what AI Toolkit's template provisions: one A100 up all the time
    aitk_nb.provision("azure", project=project, resource_group="rg-cost", overrides=A100, progress=False)

    status = aitk_nb.status(project=project)
    assert status.cost.get("cost now") == (f"USD 7.88 an hour: 1 replica up at {FIGURES['a100'][1]}, "
                                           "Consumption-GPU-NC24-A100 in swedencentral"), str(status)
    flag = status.cost.notes[0]
    assert flag.startswith("this app keeps 1 GPU replica up while idle (minReplicas 1)")
    assert "at least USD 5,750.06 a month" in flag and "`%aitk scale --min 0" in flag
    assert flag in str(status) and "cost now" in status._repr_html_()
    assert cli.main(["status", "--project", str(project)]) == 0  # a terminal names the CLI's command
    out = capsys.readouterr().out
    assert f"`aitk scale --min 0 --project {project}`" in out and "USD 5,750.06" in out
    app = aitk_nb.endpoint(project=project)
    card = str(app)
    assert "USD 7.88 an hour: 1 replica up" in str(app.card()) and "keeps 1 GPU replica up while idle" in str(app.card()), card

    aitk_nb.scale(min_replicas=0, project=project)
    azure.apps.scale_to_zero(json.loads((project / "infra" / "inference.config.json").read_text())["ACA_APP_NAME"])
    status = aitk_nb.status(project=project)
    assert status.cost.get("cost now") == "nothing: scaled to zero, no replica is up" and not status.cost.notes, str(status)
    assert "scaled to zero" in str(aitk_nb.endpoint(project=project).card())
    app_name = json.loads((project / "infra" / "inference.config.json").read_text())["ACA_APP_NAME"]
    # looking at the card asked nothing of the ingress: a request there would have started a GPU replica
    assert aitk_nb.status(project=project).cost.get("cost now").startswith("nothing: scaled to zero"), app_name

    aitk_nb.scale(stop=True, project=project)
    assert aitk_nb.status(project=project).cost.get("cost now") == "nothing: stopped, no replica is up"


def test_a_dedicated_app_pays_the_plan_fee_with_no_node_up(azure, prices_api, project):
    aitk_nb.provision("azure", project=project, resource_group="rg-cost", overrides=DEDICATED, progress=False)
    status = aitk_nb.status(project=project)
    assert status.cost.get("cost now").startswith("USD 5.47 an hour: 1 replica up"), str(status)
    assert not status.cost.notes  # minReplicas 0: nothing kept up while idle
    azure.apps.scale_to_zero(json.loads((project / "infra" / "inference.config.json").read_text())["ACA_APP_NAME"])
    now = aitk_nb.status(project=project).cost.get("cost now")
    assert now.startswith("nothing: scaled to zero") and "management fee, USD 0.10 an hour" in now


def test_price_unknown_offline_and_for_an_unlisted_region_never_stops_provision(azure, project):
    # no prices_api: the prices URL is a closed port on loopback (tests/conftest.py)
    keep_replicas_up(project)
    start = time.monotonic()
    plan = aitk_nb.provision("azure", project=project, resource_group="rg-cost", overrides=A100, what_if=True, progress=False)
    assert time.monotonic() - start < 30
    price = plan.cost.get("price")
    assert price.startswith("price unknown: the Azure Retail Prices API (http://127.0.0.1:") and "is out of reach" in price
    assert "USD" not in str(plan)  # no figure made up
    assert plan.cost.notes[0].startswith("this plan keeps 1 GPU replica up while idle (minReplicas 1)")
    assert "a monthly figure cannot be given" in plan.cost.notes[0]
    made = aitk_nb.provision("azure", project=project, resource_group="rg-cost", overrides=A100, progress=False)
    assert made.endpoint and made.cost.get("price").startswith("price unknown")
    status = aitk_nb.status(project=project)
    assert status.cost.get("cost now").startswith("1 replica up, price unknown: the Azure Retail Prices API")
    assert "a monthly figure cannot be given" in status.cost.notes[0]


def test_price_unknown_for_a_region_the_api_does_not_list(azure, prices_api, project):
    plan = aitk_nb.provision("azure", project=project, resource_group="rg-cost",
                             overrides={**A100, "location": "brazilsouth"}, what_if=True, progress=False)
    assert plan.cost.get("price") == ("price unknown: the Azure Retail Prices API lists no Container Apps prices in "
                                      "brazilsouth"), str(plan)
    asked = len(prices_api.requests)
    again = aitk_nb.provision("azure", project=project, resource_group="rg-cost",
                              overrides={**A100, "location": "brazilsouth"}, what_if=True, progress=False)
    assert again.cost.get("price") == plan.cost.get("price") and len(prices_api.requests) == asked  # not asked again
    plan = aitk_nb.provision("azure", project=project, resource_group="rg-cost",
                             overrides={**T4, "location": "eastus"}, what_if=True, progress=False)
    assert plan.cost.get("price") == ("price unknown: the Azure Retail Prices API lists no 'Standard NC T4 v3 GPU Usage' "
                                      "meter for Container Apps in eastus"), str(plan)


def test_with_no_location_the_plan_is_priced_in_the_resource_groups_region(azure, prices_api, project):
    from azure_double.clients import clients

    clients(azure)[0].resource_groups.create_or_update("rg-sweden", {"location": "swedencentral"})
    plan = aitk_nb.provision("azure", project=project, resource_group="rg-sweden", what_if=True, progress=False)
    assert plan.cost.get("price").startswith(FIGURES["t4"][1]) and plan.cost.get("price").endswith(" in swedencentral"), str(plan)


@pytest.mark.parametrize("kind", FIGURES)
@pytest.mark.parametrize("min_replicas", [0, 1])
def test_each_profile_priced_in_the_provision_card_the_form_status_and_the_endpoint(azure, prices_api, project, kind, min_replicas):
    pytest.importorskip("ipywidgets")
    from aitk_nb.widgets.provision import ProvisionForm

    overrides, per_hour, month_min, _ = FIGURES[kind]
    if min_replicas:
        keep_replicas_up(project, min_replicas)
    flagged = "keeps 1 GPU replica up while idle (minReplicas 1)"

    form = ProvisionForm(project=project, target="azure")
    form.resource_group.value = "rg-cost"
    form.fields["location"].value = overrides["location"]
    form.gpu_profile.options = [(overrides["gpuWorkloadProfileType"], overrides["gpuWorkloadProfileType"])]
    form.gpu_profile.value = overrides["gpuWorkloadProfileType"]
    form.preview_button.click()
    form.runner.wait(240)
    assert form.runner.last_error is None, form.message.value
    shown = "".join(str(o.get("data", {}).get("text/html", "")) for o in form.output.outputs)
    assert per_hour in shown and (flagged in shown) == bool(min_replicas), shown[-1500:]

    made = aitk_nb.provision("azure", project=project, resource_group="rg-cost", overrides=overrides, progress=False)
    assert made.cost.get("price").startswith(per_hour) and (flagged in str(made)) == bool(min_replicas), str(made)

    status = aitk_nb.status(project=project)
    assert status.cost.get("cost now").startswith(f"USD {per_hour.split()[1]} an hour: 1 replica up at {per_hour}"), str(status)
    assert (flagged in str(status)) == bool(min_replicas)
    if min_replicas:
        assert f"at least {month_min} a month" in status.cost.notes[0]
    card = str(aitk_nb.endpoint(project=project).card())
    assert "1 replica up at " + per_hour in card and (flagged in card) == bool(min_replicas)


def test_an_app_made_by_another_template_that_keeps_an_a100_up_is_flagged(azure, prices_api, project, capsys):
    """What AI Toolkit's own template provisions: one serverless A100 replica, minReplicas 1 and maxReplicas
    1, in westus3; the project has only the six-key config it writes (no TARGET, a bare host name)."""
    from azure_double.clients import clients
    from azure_double.scenario import TEMPLATE, deployment_body

    template = json.loads(TEMPLATE.read_text())
    app = next(r for r in template["resources"] if r["type"] == "Microsoft.App/containerApps")
    app["properties"]["template"]["scale"].update({"minReplicas": 1, "maxReplicas": 1})
    res, dep, *_ = clients(azure)
    res.resource_groups.create_or_update("rg-phi3-finetune", {"location": "westus3"})
    out = dep.deployments.begin_create_or_update("rg-phi3-finetune", "inference", deployment_body(
        {"acaAppName": "aiacaappx7k2q9", "gpuWorkloadProfileType": "Consumption-GPU-NC24-A100"}, template)).result()
    outputs = {k: v["value"] for k, v in out.properties.outputs.items()}
    six = {k: outputs.get(k) for k in ("SUBSCRIPTION_ID", "RESOURCE_GROUP_NAME", "STORAGE_ACCOUNT_NAME", "FILE_SHARE_NAME",
                                       "ACA_APP_NAME")}
    six.update(SUBSCRIPTION_ID=azure.subscription_id, RESOURCE_GROUP_NAME="rg-phi3-finetune", ACA_APP_NAME="aiacaappx7k2q9",
               ACA_APP_ENDPOINT="aiacaappx7k2q9.wittyfield-1a2b3c4d.westus3.azurecontainerapps.io")
    (project / "infra" / "inference.config.json").write_text(json.dumps(six))

    assert cli.main(["status", "--project", str(project)]) == 0
    shown = capsys.readouterr().out
    assert ("this app keeps 1 GPU replica up while idle (minReplicas 1): billed all month whether anyone asks it anything "
            f"or not, at least USD 5,750.06 a month; `aitk scale --min 0 --project {project}` lets it scale to zero when idle") in shown, shown
    assert "Consumption-GPU-NC24-A100 in westus3" in shown

    aitk_nb.scale(min_replicas=0, project=project)
    azure.apps.scale_to_zero("aiacaappx7k2q9")
    status = aitk_nb.status(project=project)
    assert status.cost.get("cost now") == "nothing: scaled to zero, no replica is up" and not status.cost.notes


def test_provision_says_a_gpu_kept_up_while_idle_before_anything_is_made(azure, prices_api, project, capsys):
    keep_replicas_up(project)
    aitk_nb.provision("azure", project=project, resource_group="rg-idle", overrides={"location": "swedencentral"})
    out = capsys.readouterr().out
    warning = out.index("this plan keeps 1 GPU replica up while idle (minReplicas 1)")
    assert warning < out.index("Microsoft.App/containerApps"), out  # before the deployment's progress
