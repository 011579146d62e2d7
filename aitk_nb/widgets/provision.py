"""The provision form: `%aitk provision` with no options in a notebook."""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import ipywidgets as w

from .. import finetuning
from ..config import NAME_RULES, TARGETS, InferenceConfig, Parameters, load_parameters, parameter_values, read_json
from ..errors import AitkError, ConfirmationError
from ..operations import Operation
from ..project import Project, find_project
from .common import ERROR, OK, ActionRunner, changes_table, message_html
from .model import GPU_PROFILE_PARAMETER, FieldSpec, check_field, form_value, parameter_fields, save_parameters, to_parameters
from .providers import AzureChoices, azure_choices

AZURE_UNAVAILABLE = ("the azure target cannot be offered here: no Azure account provider is registered "
                     "(`aitk_nb.widgets.set_azure_choices`); use the local target, or `%aitk provision --target azure` "
                     "with options")
NEW_GROUP_HINT = "pick one, or type a new name to create it"


def _field_layout() -> w.Layout:
    """A new Layout per widget: a shared one would share `display` (hiding one field hides them all)."""
    return w.Layout(width="380px")


class ProvisionForm:
    """A form over `infra/provision/inference.parameters.json` and the provision verb.

    `values()` is what the form would provision with; `preview()`, `provision()` and `save()` are
    what its buttons do (callable directly, e.g. from tests): the first two start an operation in the
    background (`runner.wait()` waits for it). The last result is in `.result`."""

    def __init__(self, *, project: str | os.PathLike | None = None, parameters: str | os.PathLike | None = None,
                 target: str = "local", port: int | None = None, choices: AzureChoices | None = None,
                 credential: Any = None):
        self.project: Project = find_project(project)
        self._parameters = parameters  # as given: None is the project's file, else aitk-nb's packaged default
        self.parameters_path = Path(parameters) if parameters else self.project.parameters_path  # where Save writes
        source = Path(parameters) if parameters else self.project.parameters_file
        self.params: Parameters = load_parameters(source)
        self.finetuning = finetuning.load(self.project)  # its names are the defaults on Azure (issue 11)
        self._file_values = parameter_values(source)
        self._confirmed = False  # Provision pressed again after it showed changes to what exists
        template = read_json(self.project.template_path, "the project needs infra/provision/inference.json")
        self.specs: list[FieldSpec] = parameter_fields(template)  # checked before any widget exists
        self._gpu_default = template.get("parameters", {}).get(GPU_PROFILE_PARAMETER, {}).get("defaultValue")
        self.credential = credential
        self._choices = choices
        self._choices_loaded = choices is not None
        self.result: Any = None
        self._build(target, port if port is not None else self._current_port())

    # -- model -----------------------------------------------------------------------------------
    @property
    def _current(self) -> InferenceConfig:
        """What is provisioned now (the pickers start from it), else the fine-tuning's subscription and
        group, or an empty config."""
        try:
            return InferenceConfig.load(self.project.config_path)
        except AitkError:
            ft = self.finetuning
            if ft is None:
                return InferenceConfig()
            return InferenceConfig(SUBSCRIPTION_ID=(ft.setting("SUBSCRIPTION_ID") or (None,))[0],
                                   RESOURCE_GROUP_NAME=(ft.setting("RESOURCE_GROUP_NAME") or (None,))[0])

    def source(self, name: str) -> str:
        """Where the value provision would use for a field comes from (what the card says after)."""
        value = form_value(name, self.fields[name].value)
        if value is not None:
            return finetuning.INFERENCE if value == self._file_values.get(name) else "set in the form"
        found = self._finetuning_value(name)
        return f"{finetuning.FINETUNING}: {found[0]} ({found[1]})" if found else finetuning.TEMPLATE

    def _finetuning_value(self, name: str):
        """The fine-tuning's value for a blank field, on Azure in the fine-tuning's group (else None)."""
        ft = self.finetuning
        if ft is None or self.target.value != "azure":
            return None
        group = (ft.setting("RESOURCE_GROUP_NAME") or (None,))[0]
        chosen = (self.resource_group.value or "").strip()
        if group and chosen and group.lower() != chosen.lower():
            return None
        return ft.value(name)

    def _current_port(self) -> int:
        cfg = self._current
        if cfg.TARGET == "local" and cfg.ACA_APP_ENDPOINT:
            return int(cfg.ACA_APP_ENDPOINT.rsplit(":", 1)[1])
        return 7860  # the template's ingress port, as provision's default

    @property
    def choices(self) -> AzureChoices | None:
        if not self._choices_loaded:
            self._choices, self._choices_loaded = azure_choices(self.credential), True
        return self._choices

    def errors(self) -> dict[str, str]:
        """Every field whose value is invalid, with its message."""
        out = {}
        for name, widget in self.fields.items():
            msg = check_field(name, widget.value)
            if msg:
                out[name] = msg
        if self.target.value == "azure":
            if self.choices is None:
                out["target"] = AZURE_UNAVAILABLE
            elif not self.subscription.value:
                out["subscription"] = "pick a subscription"
            elif not (self.resource_group.value or "").strip():
                out["resource_group"] = "pick or type a resource group"
        return out

    def values(self) -> dict[str, Any]:
        """The parameter values the form holds, as the file would (blank names are null)."""
        out = {name: form_value(name, widget.value) for name, widget in self.fields.items()}
        if self.target.value == "azure" and self.gpu_profile.value:
            out[GPU_PROFILE_PARAMETER] = self.gpu_profile.value
        return out

    def parameters(self) -> Parameters:
        return to_parameters(self.params, self.values(), source="the form")

    # -- view ------------------------------------------------------------------------------------
    def _build(self, target: str, port: int) -> None:
        self.target = w.ToggleButtons(options=list(TARGETS), value=target, description="", tooltips=[
            "a replica on this machine (no Azure account)", "Azure Container Apps with a GPU workload profile"])
        self.port = w.BoundedIntText(value=port, min=1, max=65535, layout=_field_layout())
        self.subscription = w.Dropdown(options=[], layout=_field_layout())
        self.resource_group = w.Combobox(options=[], placeholder=NEW_GROUP_HINT, ensure_option=False, layout=_field_layout())
        self.gpu_profile = w.Dropdown(options=[], layout=_field_layout())
        self.fields: dict[str, w.ValueWidget] = {}
        for spec in self.specs:
            current = getattr(self.params, spec.name)
            if spec.kind == "commands":
                widget = w.Textarea(value="\n".join(current), placeholder=spec.placeholder, rows=3,
                                    layout=_field_layout())
            elif spec.kind == "count":
                widget = w.BoundedIntText(value=current, min=1, max=10, layout=_field_layout())
            elif spec.kind == "location":
                widget = w.Combobox(value=current or "", options=[], placeholder=spec.placeholder, ensure_option=False,
                                    layout=_field_layout())
            else:
                widget = w.Text(value=current or "", placeholder=spec.placeholder, continuous_update=True, layout=_field_layout())
            widget.tooltip = spec.help  # shown on hover
            self.fields[spec.name] = widget
        self.messages: dict[str, w.HTML] = {name: w.HTML() for name in
                                            [*self.fields, "target", "port", "subscription", "resource_group", "gpu_profile"]}

        rows: list[tuple[str, w.Widget, str]] = [("Target", self.target, "target")]
        self._local_rows = [("Port (local)", self.port, "port")]
        self._azure_rows = [("Subscription", self.subscription, "subscription"),
                            ("Resource group", self.resource_group, "resource_group")]
        self._gpu_rows = [("GPU workload profile", self.gpu_profile, "gpu_profile")]
        spec_rows = [(s.label, self.fields[s.name], s.name) for s in self.specs]
        self._rows = rows + self._local_rows + self._azure_rows + spec_rows[:2] + \
            [r for r in spec_rows if r[2] == "location"] + self._gpu_rows + \
            [r for r in spec_rows[2:] if r[2] != "location"]
        # grids of label | field | message: every message sits beside its field; a hidden row's three
        # cells are display:none, so the grid's auto-placement closes the gap. The resource names get a
        # grid of their own under a heading (same columns, so the two line up).
        self._labels: dict[str, w.HTML] = {}
        first_name = next(s.name for s in self.specs if s.kind == "name")
        split = [key for _, _, key in self._rows].index(first_name)
        self.grids = [self._grid(self._rows[:split]), self._grid(self._rows[split:])]
        names_heading = w.HTML("<div style='border-top:1px solid #e0e0e0;margin-top:6px;padding-top:6px;color:#555'>"
                               "<b style='color:#222'>Resource names</b> — blank uses the template's default; "
                               "checked as you type against Azure's naming rules</div>")
        self.grid = w.VBox([self.grids[0], names_heading, self.grids[1]])

        self.preview_button = w.Button(description="Preview", icon="eye", tooltip="what-if: show what would change, change nothing")
        self.provision_button = w.Button(description="Provision", icon="cloud-upload", button_style="primary")
        self.save_button = w.Button(description="Save parameters", icon="save",
                                    tooltip=f"write the values back to {self.parameters_path.name}")
        self.message = w.HTML()
        self.message.add_class("aitk-form-message")
        self.output = w.Output()
        self.runner = ActionRunner([self.preview_button, self.provision_button, self.save_button], self.output,
                                   self.message, after=self._after)
        self.preview_button.on_click(lambda _: self.preview())
        self.provision_button.on_click(lambda _: self.provision())
        self.save_button.on_click(lambda _: self.runner.run_now(self.save, "saving"))
        title = w.HTML(f"<h3 style='margin:0'>Provision the inference environment</h3>"
                       f"<div style='color:#555'>parameters: {html.escape(str(self.parameters_path))}"
                       f"{'' if self.parameters_path.exists() else ' (the packaged defaults until saved)'} — "
                       "blank names use the template's defaults</div>")
        actions = w.HBox([self.preview_button, self.provision_button, self.save_button, self.runner.cancel_button,
                          self.runner.bar], layout=w.Layout(margin="10px 0 4px 0", align_items="center"))
        self.widget = w.VBox([title, self.grid, actions, self.message, self.output],
                             layout=w.Layout(border="1px solid #ddd", padding="8px"))
        self.widget.add_class("aitk-provision-form")

        for widget in [*self.fields.values(), self.port, self.resource_group]:
            widget.observe(self._on_value, names="value")
        self.target.observe(self._on_target, names="value")
        self.subscription.observe(self._on_subscription, names="value")
        self.fields["location"].observe(self._on_location, names="value")
        self._on_target()

    def _grid(self, rows: list[tuple[str, w.Widget, str]]) -> w.GridBox:
        cells: list[w.Widget] = []
        for label, widget, key in rows:
            widget.add_class(f"aitk-field-{key}")  # stable hooks for the browser test and user CSS
            self.messages[key].add_class(f"aitk-msg-{key}")
            self._labels[key] = w.HTML(f"<div style='font-weight:600;line-height:1.25'>{html.escape(label)}</div>",
                                       layout=w.Layout(width="270px"))
            cells += [self._labels[key], widget, self.messages[key]]
        return w.GridBox(cells, layout=w.Layout(grid_template_columns="270px 390px minmax(200px, 1fr)",
                                                grid_gap="4px 8px", align_items="center"))

    def _show(self, rows: list, visible: bool) -> None:
        for _, widget, key in rows:
            for part in (self._labels[key], widget, self.messages[key]):
                part.layout.display = None if visible else "none"

    def _on_target(self, change: Any = None) -> None:
        azure = self.target.value == "azure"
        self._show(self._local_rows, not azure)
        self._show(self._azure_rows + self._gpu_rows, azure and self.choices is not None)
        if azure and self.choices is not None and not self.subscription.options:
            self._load(lambda: self._set_options(self.subscription, self.choices.subscriptions(),
                                                 prefer=self._current.SUBSCRIPTION_ID), "subscriptions")
        self._refresh()

    def _on_subscription(self, change: Any = None) -> None:
        sub = self.subscription.value
        if not sub or self.choices is None:
            return
        def groups():
            self.resource_group.options = [v for _, v in self.choices.resource_groups(sub)]
            if not self.resource_group.value and self._current.SUBSCRIPTION_ID == sub:
                self.resource_group.value = self._current.RESOURCE_GROUP_NAME or ""

        self._load(groups, "resource groups")
        self._load(lambda: setattr(self.fields["location"], "options", [v for _, v in self.choices.locations(sub)]),
                   "locations")
        self._on_location()
        self._refresh()

    def _on_location(self, change: Any = None) -> None:
        sub, loc = self.subscription.value, form_value("location", self.fields["location"].value)
        if self.target.value != "azure" or self.choices is None or not sub or not loc or check_field("location", loc):
            return
        self._load(lambda: self._set_options(self.gpu_profile, self.choices.gpu_profiles(sub, loc),
                                             prefer=self.params.extra.get(GPU_PROFILE_PARAMETER) or self._gpu_default),
                   "GPU workload profiles")

    def _set_options(self, dropdown: w.Dropdown, options: list[tuple[str, str]], prefer: str | None = None) -> None:
        dropdown.options = options
        values = [v for _, v in options]
        if prefer in values:
            dropdown.value = prefer
        elif values and dropdown.value not in values:
            dropdown.value = values[0]

    def _load(self, fill: Any, what: str) -> None:
        """Fill a picker from the account; a failure is shown in the form, not raised into the kernel log."""
        try:
            fill()
        except AitkError as e:
            self.message.value = message_html(f"could not list {what}: {e}", ERROR)
        except Exception as e:  # the provider's SDK: show it, keep the form usable
            self.message.value = message_html(f"could not list {what}: {type(e).__name__}: {e}", ERROR)

    def _on_value(self, change: Any = None) -> None:
        self._confirmed = False  # another request: its changes have not been shown
        self._refresh()

    def _sourced(self, name: str) -> bool:
        return name in NAME_RULES or name == "location"

    def _after(self) -> None:
        """After an action: a plan refused for changing what exists is applied by pressing Provision again."""
        if isinstance(self.runner.last_error, ConfirmationError):
            self._confirmed = True
            self.message.value = message_html(f"{str(self.runner.last_error).split('; nothing was changed')[0]}: nothing "
                                              "was changed; press Provision again to apply these changes", ERROR)
        self._refresh()

    def _refresh(self) -> None:
        """Messages beside the fields, and the action buttons enabled only when the form is valid."""
        errors = self.errors()
        for key, label in self.messages.items():
            msg = errors.get(key)
            label.value = message_html(msg, ERROR) if msg else ""
        for name in self.fields:  # where each value comes from, where nothing is wrong
            if name not in errors and self._sourced(name):
                self.messages[name].value = message_html(self.source(name))
                found = self._finetuning_value(name)
                if hasattr(self.fields[name], "placeholder") and found:
                    self.fields[name].placeholder = f"fine-tuning: {found[0]}"
        if self.target.value == "azure" and not self.choices:
            self.messages["target"].value = message_html(AZURE_UNAVAILABLE, ERROR)
        elif self.resource_group.value and self.resource_group.value not in self.resource_group.options:
            self.messages["resource_group"].value = message_html("new: it will be created", OK)
        if self.runner.running:
            return
        invalid = bool(errors)
        self.preview_button.disabled = self.provision_button.disabled = invalid
        self.save_button.disabled = any(k in errors for k in self.fields)

    # -- actions ---------------------------------------------------------------------------------
    def _begin(self, what_if: bool) -> Operation:
        from .. import verbs

        self.parameters()  # validate the whole form first: the message names the field
        values = self.values()
        target = self.target.value
        if target == "azure":
            if self.choices is None:
                raise AitkError(AZURE_UNAVAILABLE)
            # no one waits in the background to answer a question: the form asks by showing the changes,
            # and a second press of Provision is the answer
            return verbs.begin_provision("azure", project=self.project.root, parameters=self._parameters,
                                         overrides=values, what_if=what_if, subscription=self.subscription.value,
                                         resource_group=self.resource_group.value.strip(), credential=self.credential,
                                         progress=False, yes=self._confirmed)
        return verbs.begin_provision("local", project=self.project.root, parameters=self._parameters,
                                     overrides=values, port=self.port.value, what_if=what_if, progress=False)

    def preview(self) -> Operation | None:
        """What the Preview button does: what-if in the background; the changes show in the form."""
        return self.runner.start(lambda: self._begin(what_if=True), "previewing", self._previewed)

    def _previewed(self, result) -> None:
        from IPython.display import HTML

        self.result = result
        self.output.append_display_data(HTML(f"<b>What provision would do on the {result.target} target</b> "
                                             f"(nothing changed){changes_table(result.changes)}"
                                             f"{result.cost._repr_html_() if result.cost else ''}"))
        self.message.value = message_html("preview ready: nothing was changed", OK)

    def provision(self) -> Operation | None:
        """What the Provision button does: provision in the background, with progress and Cancel."""
        return self.runner.start(lambda: self._begin(what_if=False), "provisioning", self._provisioned)

    def _provisioned(self, result) -> None:
        self._confirmed = False
        self.result = result
        self.output.append_display_data(result)
        self.message.value = message_html(f"provisioned the {result.target} target: {result.endpoint}", OK)

    def save(self) -> Path:
        params = self.parameters()
        save_parameters(self.parameters_path, params)
        self.params = params
        self.result = self.parameters_path
        self.message.value = message_html(f"saved {self.parameters_path}", OK)
        return self.parameters_path

    # -- display ---------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<aitk provision form for {self.parameters_path}>"
