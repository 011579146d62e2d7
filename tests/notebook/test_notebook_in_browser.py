"""The notebook experience in a real browser: JupyterLab 4 renders the provision form, the deploy
progress, the endpoint link and the evaluation report; the deployed app's Gradio UI streams an answer.
Screenshots: test-artifacts/browser/*.png."""
import re
import time

import pytest

from helpers import REPO

ARTIFACTS = REPO / "test-artifacts" / "browser"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

NOTEBOOK = "notebooks/remote_inference.ipynb"
QUESTION = "What is the capital of Quorvania?"  # demo/facts.jsonl: the adapter learned it, the base cannot know it


def shot(page, name, locator=None):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (locator or page).screenshot(path=str(ARTIFACTS / f"{name}.png"))


def cell_with(page, source, exact=False):
    """The first notebook cell whose source starts with `source` (or is exactly `source`)."""
    text = re.compile("^" + re.escape(source) + "$") if exact else source
    return page.locator(".jp-Notebook .jp-CodeCell").filter(
        has=page.locator(".jp-InputArea-editor", has_text=text)).first


def run_cell(page, cell, timeout_s=120):
    """Select the cell (command mode), run it with Shift+Enter and wait for its execution count.

    A run pressed while the kernel's session is still connecting is dropped by JupyterLab (the prompt
    stays "[ ]:"), so a run that has not started within a few seconds is pressed again."""
    prompt = cell.locator(".jp-InputPrompt").first
    deadline = time.monotonic() + timeout_s
    for attempt in range(3):
        prompt.click()
        page.keyboard.press("Shift+Enter")
        started = time.monotonic() + 5
        while time.monotonic() < started and prompt.inner_text().strip() == "[ ]:":
            page.wait_for_timeout(100)
        if prompt.inner_text().strip() != "[ ]:":
            break
    # "[*]:" -> "[n]:"; an error output fails the test with its text
    while time.monotonic() < deadline:
        if re.fullmatch(r"\[\d+\]:", prompt.inner_text().strip()):
            break
        page.wait_for_timeout(250)
    else:
        shot(page, "failure")
        raise AssertionError(f"cell did not finish in {timeout_s} s: {cell.inner_text()[:500]}")
    traceback = cell.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    assert traceback.count() == 0, traceback.first.inner_text()
    return cell


def open_notebook(browser, base, token):
    import httpx

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
    # the kernel from the notebook's kernelspec metadata (no "Select Kernel" dialog): wait until the
    # page's websocket is connected to it and it is idle
    deadline = time.monotonic() + 60
    while not any(k["connections"] and k["execution_state"] == "idle"
                  for k in httpx.get(f"{base}/api/kernels", params={"token": token}, timeout=5).json()):
        assert time.monotonic() < deadline, "the notebook's kernel did not start"
        page.wait_for_timeout(250)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=60_000)
    return page


def test_provision_form_deploy_and_report_render_in_jupyterlab(browser, jupyterlab, lab_project, demo_assets):
    base, token = jupyterlab
    root, port = lab_project
    page = open_notebook(browser, base, token)
    try:
        run_cell(page, cell_with(page, "%load_ext aitk_nb"))
        run_cell(page, cell_with(page, "from aitk_nb.demo import demo_assets"), timeout_s=300)

        # -- the provision form --------------------------------------------------------------
        form_cell = run_cell(page, cell_with(page, "%aitk provision", exact=True))
        form = form_cell.locator(".aitk-provision-form")
        form.wait_for(timeout=30_000)
        for label in ("Target", "Port (local)", "Maximum instance count", "Default commands", "Storage account name"):
            assert form.get_by_text(label, exact=True).is_visible(), label  # every row shown, not only in the DOM
        assert form.locator(".aitk-field-storageAccountName input").is_visible()
        assert form.locator("button", has_text="Preview").is_enabled()
        port_field = form.locator(".aitk-field-port input")
        port_field.fill(str(port))
        port_field.press("Enter")
        storage = form.locator(".aitk-field-storageAccountName input")
        storage.fill("Bad_Name!")
        message = form.locator(".aitk-msg-storageAccountName")
        message.get_by_text("not a valid name: 3-24 lowercase letters and digits").wait_for(timeout=10_000)
        assert form.locator("button", has_text="Provision").is_disabled()
        form.scroll_into_view_if_needed()
        shot(page, "1-provision-form-validation", form)
        storage.fill("")
        # valid again: beside the field, where its value comes from (blank: the template's default)
        page.wait_for_function("el => el.innerText.trim() === 'template default'", arg=message.element_handle(),
                               timeout=10_000)
        form.locator("button", has_text="Preview").click()
        form.locator(".aitk-changes").wait_for(timeout=60_000)
        assert "create" in form.locator(".aitk-changes").inner_text()
        form.locator("button", has_text="Provision").click()
        form.locator(".aitk-form-message", has_text="provisioned the local target").wait_for(timeout=60_000)
        assert form.locator(f"a[href='http://127.0.0.1:{port}']").count() == 1
        assert (root / "infra/inference.config.json").exists()
        shot(page, "2-provision-form-done", form)

        # -- the rest of the flow as commands (`target` is "--target local --port N" in the first cell)
        run_cell(page, cell_with(page, "%aitk provision $target --what-if"))
        run_cell(page, cell_with(page, "%aitk provision $target", exact=True))
        deploy_form = run_cell(page, cell_with(page, "%aitk deploy", exact=True))
        deploy_form.locator(".aitk-deploy-form").wait_for(timeout=30_000)
        assert deploy_form.locator(".aitk-deploy-form input[type='checkbox']").count() >= 1
        shot(page, "3-deploy-form", deploy_form.locator(".aitk-deploy-form"))

        deploy = cell_with(page, "%aitk deploy --model")
        run_cell(page, deploy, timeout_s=600)
        out = deploy.locator(".jp-OutputArea")
        assert out.locator(".widget-progress, .progress").count() >= 1  # tqdm's widgets: upload and readiness
        link = out.locator(f"a[href='http://127.0.0.1:{port}']")
        assert link.count() == 1 and "Deployed to the local target" in out.inner_text()
        deploy.scroll_into_view_if_needed()
        shot(page, "4-deploy-progress-and-card", deploy)

        status = run_cell(page, cell_with(page, "%aitk", exact=True))
        assert "running" in status.locator(".aitk-card").inner_text()
        shot(page, "5-status-card", status.locator(".aitk-card"))

        run_cell(page, cell_with(page, "%aitk endpoint"))
        report_cell = run_cell(page, cell_with(page, "%%aitk eval"), timeout_s=600)
        report = report_cell.locator(".aitk-eval")
        report.wait_for(timeout=10_000)
        summary = report.locator("table.aitk-eval-summary").inner_text()
        assert "base" in summary and demo_assets.adapter_name in summary and "words/s" in summary
        groups = report.locator("table.aitk-eval-groups").inner_text()
        assert "facts" in groups and "controls" in groups
        detail = report.locator("table.aitk-eval-detail")
        assert "✓" in detail.inner_text() and "✗" in detail.inner_text() and QUESTION in detail.inner_text()
        plot = report.locator("img.aitk-eval-plot")
        assert plot.evaluate("img => img.complete && img.naturalWidth > 300")
        # a viewport as tall as the report, so its screenshot is whole (JupyterLab scrolls inside the page)
        page.set_viewport_size({"width": 1400, "height": min(4000, int(report_cell.bounding_box()["height"]) + 200)})
        report_cell.scroll_into_view_if_needed()
        shot(page, "6-eval-report", report_cell)
        page.set_viewport_size({"width": 1400, "height": 1000})
        run_cell(page, cell_with(page, 'report.to_pandas("groups")'))
    finally:
        page.close()


def test_gradio_ui_streams_the_adapter_answer(browser, lab_project, demo_assets):
    import aitk_nb

    root, port = lab_project
    state = aitk_nb.status(project=root) if (root / "infra/inference.config.json").exists() else None
    if state is None or state.replica != "running":  # run alone: deploy here (the first test usually has)
        aitk_nb.provision("local", project=root, port=port, progress=False)
        aitk_nb.deploy([str(demo_assets.adapter)], str(demo_assets.base_model), project=root, progress=False)
    url = aitk_nb.endpoint(project=root).url
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        page.goto(url + "/")
        page.get_by_label("Prompt").wait_for(timeout=60_000)
        adapter = page.get_by_label("Adapter")
        adapter.click()
        page.get_by_role("option", name=demo_assets.adapter_name).click()
        page.get_by_label("Prompt").fill(QUESTION)
        page.get_by_role("button", name="Generate").click()
        output = page.get_by_label("Output")
        seen: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = output.input_value()
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            if "Zeltrin" in text and page.locator(".generating, .pending").count() == 0:
                break
            page.wait_for_timeout(50)
        assert seen and "Zeltrin" in seen[-1], seen
        # streamed: the text grew in steps, each one a prefix of the next
        assert len(seen) >= 2 and all(b.startswith(a) for a, b in zip(seen, seen[1:])), seen
        shot(page, "8-gradio-adapter-answer")
    finally:
        page.close()
