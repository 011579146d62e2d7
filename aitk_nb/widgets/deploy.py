"""The deploy form: `%aitk deploy` with no options in a notebook. Offers the adapters it finds."""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Iterable

import ipywidgets as w

from ..operations import Operation
from ..project import Project, find_project
from .common import OK, ActionRunner, message_html

_DEPTH = 3  # models/<run>/<checkpoint>/adapter_config.json is as deep as fine-tuning outputs go


def cache_root() -> Path:
    """The toolkit's cache (the demo assets live there), as demo/aitk_demo/cache.py defines it."""
    return Path(os.environ.get("AITK_CACHE") or Path.home() / ".cache" / "aitk-nb").expanduser()


def _adapter_dirs(folder: Path, depth: int = _DEPTH) -> Iterable[Path]:
    if not folder.is_dir():
        return
    if (folder / "adapter_config.json").is_file():
        yield folder
        return
    if depth == 0:
        return
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        yield from _adapter_dirs(child, depth - 1)


def find_adapters(project: Project, extra: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """PEFT adapter folders (with adapter_config.json): the ones given, then under the project's
    `models/` (the fine-tuning step's output layout), then in the toolkit's cache; no duplicates."""
    found: list[Path] = []
    for folder in [*(Path(p).expanduser() for p in extra), project.root / "models", cache_root() / "models"]:
        for adapter in _adapter_dirs(folder.resolve()):
            if adapter not in found:
                found.append(adapter)
    return found


def _on_the_share(project: Project) -> tuple[list[str], str]:
    """The adapters already on the provisioned target's share, and why none could be listed ("" if listed)."""
    from ..config import InferenceConfig
    from ..deploy_plan import share_adapters
    from ..errors import AitkError, NotProvisionedError
    from ..targets import get_target

    try:
        return share_adapters(get_target(InferenceConfig.load(project.config_path), project).remote()), ""
    except NotProvisionedError:
        return [], ""  # nothing provisioned: no share yet
    except AitkError as e:
        return [], f"the share's adapters are not listed: {e}"


class DeployForm:
    """Pick adapters (and optionally the base model), then Deploy: sync, restart, wait for /health."""

    def __init__(self, *, project: str | os.PathLike | None = None, adapters: Iterable[str | os.PathLike] = (),
                 model: str | None = None):
        self.project = find_project(project)
        given = [Path(p).expanduser().resolve() for p in adapters]
        on_share, self.share_note = _on_the_share(self.project)
        # what deploy takes: a local folder's path, or share:PATH for one the fine-tuning left on the share
        self.adapters = [str(p) for p in find_adapters(self.project, given)] + on_share
        self.result: Any = None
        self.checks = [w.Checkbox(value=a in map(str, given) or (not given and i == 0), indent=False,
                                  description=a.rstrip("/").rsplit("/", 1)[-1], layout=w.Layout(width="220px"))
                       for i, a in enumerate(self.adapters)]
        rows = max(len(self.adapters), 1)
        self.grid = w.GridspecLayout(rows, 2, layout=w.Layout(height="auto", grid_gap="2px 8px"))
        if self.adapters:
            for i, (check, where) in enumerate(zip(self.checks, self.adapters)):
                self.grid[i, 0] = check
                self.grid[i, 1] = w.HTML(f"<code>{html.escape(where)}</code>")
        else:
            self.grid[0, :] = w.HTML("no adapters found under models/, in the cache or on the share; pass one: "
                                     "<code>%aitk deploy --adapter PATH</code>")
        self.grid.layout.grid_template_columns = "220px 1fr"
        self.grid.layout.grid_template_rows = f"repeat({rows}, auto)"
        self.model = w.Text(value=model or "", placeholder="default: the deployed one, or the adapters' base model",
                            description="Base model", layout=w.Layout(width="600px"), style={"description_width": "100px"})
        self.restart = w.Checkbox(value=True, description="restart the replica (when something changed)", indent=False)
        self.wait = w.Checkbox(value=True, description="wait until /health answers", indent=False)
        self.deploy_button = w.Button(description="Deploy", icon="rocket", button_style="primary")
        self.message = w.HTML()
        self.message.add_class("aitk-form-message")
        self.output = w.Output()
        self.runner = ActionRunner([self.deploy_button], self.output, self.message)
        self.deploy_button.on_click(lambda _: self.deploy())
        self.restart.observe(lambda change: setattr(self.wait, "disabled", not change["new"]), names="value")
        title = w.HTML("<h3 style='margin:0'>Deploy adapters</h3><div style='color:#555'>"
                       "served under their folder names, beside the base model (<code>base</code>); "
                       "<code>share:</code> ones are on the share already and are not sent</div>"
                       + (f"<div style='color:#555'>{html.escape(self.share_note)}</div>" if self.share_note else ""))
        actions = w.HBox([self.deploy_button, self.runner.cancel_button, self.runner.bar],
                         layout=w.Layout(align_items="center"))
        self.widget = w.VBox([title, self.grid, self.model, w.HBox([self.restart, self.wait]), actions,
                              self.message, self.output], layout=w.Layout(border="1px solid #ddd", padding="8px"))
        self.widget.add_class("aitk-deploy-form")

    def selected(self) -> list[str]:
        return [a for a, check in zip(self.adapters, self.checks) if check.value]

    def deploy(self) -> Operation | None:
        """What the Deploy button does: start the deploy in the background (`begin_deploy`); the form
        follows its progress and shows the result (also in `.result`) when it ends."""
        from .. import verbs

        return self.runner.start(lambda: verbs.begin_deploy(
            self.selected(), self.model.value.strip() or None, project=self.project.root,
            restart=None if self.restart.value else False, wait=self.restart.value and self.wait.value, progress=False),
            "deploying", self._deployed)

    def _deployed(self, result) -> None:
        self.result = result
        self.output.append_display_data(result)
        self.message.value = message_html(f"deployed: {result.endpoint} serves {', '.join(result.variants)}", OK)

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<aitk deploy form for {self.project.root}>"
