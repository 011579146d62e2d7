"""Each verb's options, declared once with IPython's magic_arguments and shared by `%aitk <verb>`
and the `aitk <verb>` CLI. A handler parses nothing itself: it maps parsed options to one verb call."""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from IPython.core.magic_arguments import MagicHelpFormatter, argument, kwds, magic_arguments

from .config import TARGETS
from .errors import AitkError, ConfigError, EvalError
from .invocation import command


class _LineMagicHelp(MagicHelpFormatter):
    """Usage as the magic is typed (`%aitk provision [...]`). IPython's formatter writes RST for Sphinx
    (a `::` code block, `<...>` around choices); `%aitk help` and `%aitk?` show the text as it is."""

    magic = "%"
    _format_action_invocation = argparse.HelpFormatter._format_action_invocation

    def add_usage(self, usage, actions, groups, prefix=None):
        argparse.RawDescriptionHelpFormatter.add_usage(self, usage, actions, groups, prefix or self.magic)


class _CellMagicHelp(_LineMagicHelp):
    magic = "%%"


def _magic(verb: str, help_format: type[MagicHelpFormatter] = _LineMagicHelp):
    """The verb's parser: `prog` is what follows the `%` (or `%%`) its usage line starts with."""
    return lambda f: magic_arguments(name=f"aitk {verb}")(kwds(formatter_class=help_format)(f))


def _project(f):
    return argument("--project", metavar="PATH", help="project folder (default: nearest folder upward with infra/, "
                                                     "else this one)")(f)


def _currency(f):
    """`--currency CODE`: the prices the verb shows are in that currency (issue 18); the operation a verb
    starts keeps it (a context variable, copied into its thread)."""
    import functools

    @functools.wraps(f)
    def handler(args, cell: str | None):
        from .prices import using_currency

        with using_currency(args.currency):
            return f(args, cell)

    return argument("--currency", metavar="CODE", help="show prices in this currency (USD, EUR, GBP, ...; default: "
                                                       "$AITK_CURRENCY, else USD)")(handler)


def _background(f):
    return argument("--background", action="store_true",
                    help="return at once with the running operation (`.status()`, `.result()`, `.cancel()`); "
                         "its progress shows in this cell and the kernel stays free (notebooks only)")(f)


def _finish(operation, background: bool):
    """The operation itself when it runs in the background (its outcome shows in the cell that started
    it when it ends), else its result (an interrupt stops it at its next safe point)."""
    if not background:
        return operation.result()
    operation.add_done_callback(_show_outcome)
    return operation


def _show_outcome(operation) -> None:
    import sys

    from IPython.display import display

    try:
        display(operation.result())
    except AitkError as e:  # one line, as the magic shows it when it waits
        print(f"{operation.title}: {type(e).__name__}: {e}", file=sys.stderr)


@_magic("init")
@argument("--migrate", action="store_true", help="switch a parameters file that starts AI Toolkit's server "
                                                 "(gradio_chat.py) to aitk-nb's commands, after asking; the old file is "
                                                 "kept beside it as a backup")
@argument("--yes", action="store_true", help="with --migrate: migrate without asking")
@_project
def init(args, cell: str | None):
    """Write aitk-nb's template (JSON and Bicep), parameters file and walkthrough notebook into the
    project to edit, and .gitignore lines for .aitk/ and infra/inference.config.json; never overwrites
    a file (it says what it kept)."""
    from .scaffold import init as run
    from .verbs import ask_on_stdin

    return run(project=args.project, migrate=args.migrate, yes=args.yes, confirm=ask_on_stdin)


@_magic("provision")
@argument("--target", choices=TARGETS, default="local", help="where to run the app (default: local)")
@argument("--subscription", metavar="ID", help="Azure subscription id (azure target)")
@argument("--resource-group", metavar="RG", help="Azure resource group (azure target)")
@argument("--location", metavar="LOC", help="Azure region, overrides the parameters file's location")
@argument("--parameters", metavar="PATH", help="parameters file (default: infra/provision/inference.parameters.json)")
@argument("--port", type=int, help="local target: the port to serve on (default: the template's ingress port, 7860)")
@argument("--what-if", action="store_true", help="show what would change, change nothing")
@argument("--yes", action="store_true", help="apply a plan that modifies or deletes resources that existed before without "
                                             "asking (it shows the what-if changes and asks otherwise); local: restart "
                                             "a running replica the change affects without asking")
@argument("--rotate-key", action="store_true", help="azure: give an existing app a new API key (default: keep its key; "
                                                    "every client must then use the new one)")
@argument("--cancel-previous", action="store_true", help="azure: cancel an earlier deployment of other parameters that is "
                                                         "still running (default: wait for it to end)")
@_background
@_project
@_currency
def provision(args, cell: str | None):
    """Create or update the inference environment from infra/provision/inference.json and the
    parameters file; writes infra/inference.config.json. As a cell magic, the body is a JSON object
    of parameter overrides, e.g. {"maximumInstanceCount": 2}."""
    from .verbs import begin_provision

    overrides: dict[str, Any] = {}
    if cell and cell.strip():
        try:
            overrides = json.loads(cell)
        except json.JSONDecodeError as e:
            raise ConfigError(f"the cell body must be a JSON object of parameter overrides ({e.msg} at line {e.lineno})") from None
        if not isinstance(overrides, dict):
            raise ConfigError('the cell body must be a JSON object of parameter overrides, e.g. {"maximumInstanceCount": 2}')
    from .config import check_overrides
    from .project import find_project

    template = find_project(args.project).template_path
    if overrides:  # named where the user wrote them, before they are merged with the parameters file
        check_overrides(template, overrides, "the cell body")
    if args.location:
        check_overrides(template, {"location": args.location}, "--location")
        overrides["location"] = args.location
    if args.target == "local" and (args.subscription or args.resource_group):
        raise ConfigError("--subscription and --resource-group are for --target azure")
    if args.target == "azure" and args.port:
        raise ConfigError("--port is for --target local")
    if args.target == "local" and (args.rotate_key or args.cancel_previous):
        raise ConfigError("--rotate-key and --cancel-previous are for --target azure")
    from .verbs import ask_on_stdin

    # a question is answered by whoever waits for the result: no one does in the background
    return _finish(begin_provision(args.target, project=args.project, parameters=args.parameters,
                                   overrides=overrides or None, port=args.port, what_if=args.what_if,
                                   subscription=args.subscription, resource_group=args.resource_group, yes=args.yes,
                                   rotate_key=args.rotate_key, cancel_previous=args.cancel_previous,
                                   confirm=None if args.background else ask_on_stdin), args.background)


@_magic("deploy")
@argument("--adapter", action="append", default=[], metavar="[NAME=]PATH",
          help="a PEFT adapter: a local folder (sent to the share) or share:PATH (a folder already on the share, "
               "such as the fine-tuning's models/.../adapter; nothing sent); served as NAME, default its folder name "
               "(repeat for several; default: keep the deployed ones)")
@argument("--model", metavar="PATH", help="the base model: a local folder, share:PATH (e.g. share:model-cache/org/model) "
                                           "or a hub id (default: keep the deployed one, or the adapters' "
                                           "base_model_name_or_path)")
@argument("--restart", action=argparse.BooleanOptionalAction, default=None,
          help="restart the replica even when nothing changed or only adapters changed (--no-restart: only sync "
               "files); default: restart when the base model, server code, requirements or server settings changed "
               "(a running server applies adapter-only changes itself)")
@argument("--no-wait", action="store_true", help="restart, but do not wait for the health route")
@argument("--no-wait-lock", action="store_true",
          help="if another deploy to this app is running, stop at once instead of waiting for it")
@argument("--timeout", type=float, metavar="SECONDS", help="readiness wait limit (default: the startup probe's)")
@argument("--merge-adapter", action=argparse.BooleanOptionalAction, default=None,
          help="fold the one adapter into the base weights (faster; `base` is then not served); "
               "default: as deployed")
@argument("--yes", action="store_true", help="azure: an app that runs another server (one AI Toolkit provisioned) is "
                                             "switched to aitk-nb's in place without asking")
@_background
@_project
def deploy(args, cell: str | None):
    """Sync the inference app, base model and adapters to the share, restart the replica and wait
    until /health answers. A redeploy with nothing changed sends nothing and does not restart; an
    adapter-only change is applied by the running server without a restart. One deploy at a time per
    app: a second one waits for the first (a lock in the app's folder on the share)."""
    from .verbs import ask_on_stdin, begin_deploy

    return _finish(begin_deploy(args.adapter, args.model, project=args.project, restart=args.restart,
                                wait=not args.no_wait, timeout=args.timeout, merge_adapter=args.merge_adapter,
                                yes=args.yes, confirm=ask_on_stdin, wait_lock=not args.no_wait_lock),
                   args.background)


@_magic("status")
@_project
@_currency
def status(args, cell: str | None):
    """Target, endpoint, replica state and what is deployed."""
    from .verbs import status as run

    return run(project=args.project)


@_magic("endpoint")
@_project
@_currency
def endpoint(args, cell: str | None):
    """The endpoint URL (Gradio UI and API), its OpenAI-compatible base URL, health route and state."""
    from .verbs import endpoint as run

    return run(project=args.project)


@_magic("logs")
@argument("--tail", type=int, default=100, metavar="N", help="show the last N lines (default 100; the azure target's "
                                                               "log stream sends at most 300)")
@argument("--follow", action="store_true", help="then keep printing new lines until interrupted (reconnecting when "
                                                "the stream drops, without losing or repeating a line)")
@_project
def logs(args, cell: str | None):
    """The replica's output."""
    from .verbs import logs as run

    return run(tail=args.tail, follow=args.follow, project=args.project)


@_magic("scale")
@argument("--min", dest="min_replicas", type=int, metavar="N", help="fewest replicas (0: scale to zero when idle)")
@argument("--max", dest="max_replicas", type=int, metavar="N", help="most replicas (scale out on concurrent requests)")
@argument("--stop", action="store_true", help="stop the app: no replica at all, nothing billed, the endpoint off")
@argument("--start", action="store_true", help="start a stopped app again")
@_project
def scale(args, cell: str | None):
    """Scale the app: replica bounds (azure target), or stop it and start it again (both targets)."""
    from .verbs import scale as run

    return run(min_replicas=args.min_replicas, max_replicas=args.max_replicas, stop=args.stop, start=args.start,
               project=args.project)


@_magic("teardown")
@argument("--app-only", action="store_true", help="stop and remove the app, keep the share and its files")
@argument("--yes", action="store_true", help="act on the plan without asking (it is shown first either way)")
@argument("--target", choices=TARGETS, help="without infra/inference.config.json (a fresh clone): the target to tear down")
@argument("--subscription", metavar="ID", help="without a config: the Azure subscription (default: the fine-tuning's)")
@argument("--resource-group", metavar="RG", help="without a config: the Azure resource group (default: the fine-tuning's)")
@_project
def teardown(args, cell: str | None):
    """Stop the app and remove what aitk-nb made for it (or only the app); what it did not make (what
    existed before provision, what another app made) is kept. Shows the plan, then asks (or --yes)."""
    from .verbs import teardown as run

    return run(app_only=args.app_only, yes=args.yes, project=args.project, target=args.target,
               subscription=args.subscription, resource_group=args.resource_group)


@_magic("eval", _CellMagicHelp)
@argument("--variants", metavar="base,ADAPTER", help="comma-separated variants (default: base and every served adapter)")
@argument("--concurrency", type=int, metavar="N", help="requests in flight (default 4; a resume: as saved)")
@argument("--max-new-tokens", type=int, default=64, metavar="N", help="tokens per answer (default 64)")
@argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
@argument("--scoring", choices=("contains", "exact"), default="contains", help="how an answer matches expected (a function: the Python API, evaluate(scoring=fn))")
@argument("--api", choices=("gradio", "openai"), default="gradio",
          help="the Gradio API (default; answer sizes in words) or the OpenAI-compatible route (reports tokens)")
@argument("--out", metavar="FILE", help="also save the rows (.csv, else JSON lines)")
@argument("--endpoint", metavar="URL", help="evaluate this endpoint instead of the deployed one")
@argument("--samples", type=int, default=1, metavar="N",
          help="ask each prompt N times (needs --temperature above 0); the report gives the mean accuracy and its interval")
@argument("--wake-timeout", type=float, metavar="SECONDS",
          help="how long to wait for an endpoint that is scaled to zero or starting (default: the target's startup limit)")
@argument("--resume", metavar="FILE", help="a result saved with --out FILE.jsonl: send only the answers that failed or "
                                           "were never sent, and save the merged result back into FILE")
@_project
@_currency
def eval_(args, cell: str | None):
    """Run the prompts in the cell body (one per line, or JSONL {"prompt": ..., "expected": ..., "group": ...})
    against each variant; shows answers, accuracy over the answers received (per group too) with the
    failed ones apart, each adapter against base (difference with its confidence interval, exact McNemar test), latency and
    throughput per variant, and a plot. An endpoint scaled to zero is woken first. Kernel > Interrupt
    stops it and keeps the answers received."""
    from .evaluation import EvalResult, evaluate

    if args.resume:
        if any(line.strip() and not line.strip().startswith("#") for line in (cell or "").splitlines()):
            raise EvalError(f"--resume sends the prompts saved in FILE; leave the prompts out: {command('eval --resume FILE')}")
        result = EvalResult.load(args.resume).retry(concurrency=args.concurrency, wake_timeout=args.wake_timeout)
        if args.out:
            result.save(args.out)
        return result
    return evaluate(cell or "", variants=args.variants, endpoint=args.endpoint, project=args.project,
                    concurrency=4 if args.concurrency is None else args.concurrency, max_new_tokens=args.max_new_tokens,
                    temperature=args.temperature, scoring=args.scoring, api=args.api, out=args.out,
                    samples=args.samples, wake_timeout=args.wake_timeout)


VERBS: dict[str, Callable] = {
    "init": init, "provision": provision, "deploy": deploy, "status": status, "endpoint": endpoint,
    "logs": logs, "scale": scale, "teardown": teardown, "eval": eval_,
}


def overview() -> str:
    """Every verb's help, for `%aitk?`, `%aitk help` and `aitk --help`."""
    return "\n".join(fn.parser.format_help() for fn in VERBS.values())
