"""The ownership rule on the local target: a share folder that existed before provision is kept by
teardown; one provision created (its marker inside) goes. No replica runs here."""
import aitk_nb
from aitk_nb.targets.local import OWNER_MARKER
from helpers import app_folder, free_port


def test_teardown_keeps_a_share_folder_that_existed_before_provision(project):
    theirs = project / ".aitk/local/shares/aitk-inference"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("mine, made before provision")
    preview = aitk_nb.provision("local", project=project, port=free_port(), what_if=True, progress=False)
    assert ("file share (folder)", "Reuse (existed before provision: kept at teardown)") in preview.changes
    aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    assert not (theirs / OWNER_MARKER).exists()  # nothing written into it

    done = aitk_nb.teardown(yes=True, project=project, show=None)
    assert (theirs / "notes.txt").read_text() == "mine, made before provision"
    assert ("keep", f"share folder {theirs} — existed before provision (not created by aitk-nb)") in done.card().rows
    assert not (project / ".aitk/local/app.json").exists() and not (project / "infra/inference.config.json").exists()

    made = project / ".aitk/local/shares/made-here"
    aitk_nb.provision("local", project=project, port=free_port(), overrides={"fileShareName": "made-here"}, progress=False)
    assert (made / OWNER_MARKER).read_text().strip()  # the app's name
    (made / app_folder(project)).mkdir(parents=True)
    (made / app_folder(project) / "settings.json").write_text("{}")  # what deploy would put there
    aitk_nb.teardown(yes=True, project=project, show=None)
    assert not made.exists()
    assert (theirs / "notes.txt").exists()


def test_app_only_keeps_the_share_folder_provision_made(project):
    aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    share = project / ".aitk/local/shares/aitk-inference"
    done = aitk_nb.teardown(app_only=True, yes=True, project=project, show=None)
    assert share.is_dir() and ("keep", f"share folder {share} — kept (--app-only)") in done.card().rows
    assert (project / "infra/inference.config.json").exists()  # --app-only keeps the config
