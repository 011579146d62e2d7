"""`aitk <verb>`: the magics' verbs for terminals and CI, with the same options."""
from __future__ import annotations

import argparse
import difflib
import sys

from . import commands
from .errors import AitkError
from .invocation import body_read_from, for_project, in_terminal
from .results import Displayable


def _summary(doc: str | None) -> str:
    """A verb's docstring's first sentence, for the list of verbs in `aitk --help`."""
    first = " ".join((doc or "").strip().split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".")


# What a verb's description says in a terminal where the magic's speaks of cells (issue 20, item 8).
TERMINAL_DESCRIPTIONS = {
    "provision": "Create or update the inference environment from infra/provision/inference.json and the "
                 "parameters file; writes infra/inference.config.json.",
    "eval": 'Run the prompts of PROMPTS_FILE (one per line, or JSONL {"prompt": ..., "expected": ..., "group": ...}) '
            "against each variant; shows answers, accuracy (per group too), latency and throughput per variant. "
            "Ctrl-C stops it and keeps the answers received.",
}
NOTEBOOK_ONLY = ("background",)  # options the CLI refuses: not listed in its help
DEMO = ("Run the whole flow on the local target: build (first time) the demo base model and a LoRA adapter "
        "fine-tuned on invented facts, provision, deploy, and evaluate base vs fine-tuned; the endpoint keeps "
        "running afterwards.")


class _VerbParser(argparse.ArgumentParser):
    """A verb's parser: an option it does not know is reported with the verb's own usage and the closest
    option it has (argparse would leave it to the top-level parser, whose usage is `aitk VERB ...`)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}{self._closest(extra)}")
        return namespace, extra

    def _closest(self, extra: list[str]) -> str:
        options = [o for o, a in self._option_string_actions.items() if a.help != argparse.SUPPRESS]
        for arg in extra:
            if arg.startswith("-") and (near := difflib.get_close_matches(arg.split("=", 1)[0], options, n=1)):
                return f"; did you mean {near[0]}?"
        return ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aitk", description="Provision, deploy and evaluate fine-tuned LoRA adapters.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=_VerbParser)
    for verb, handler in commands.VERBS.items():
        description = TERMINAL_DESCRIPTIONS.get(verb, handler.parser.description)
        p = sub.add_parser(verb, help=_summary(description), description=description)
        for action in handler.parser._actions:  # what `parents=` adds, less -h (p has its own) and notebook-only options
            if action.dest not in ("help", *NOTEBOOK_ONLY):
                p._add_action(action)
        for dest in NOTEBOOK_ONLY:  # still parsed, so the refusal says why
            if any(a.dest == dest for a in handler.parser._actions):
                p.add_argument(f"--{dest}", action="store_true", help=argparse.SUPPRESS)
        p.set_defaults(handler=handler)
        if verb == "eval":
            p.add_argument("prompts", metavar="PROMPTS_FILE", nargs="?",
                           help="prompts: one per line or JSONL ('-' for stdin); none with --resume")
    demo = sub.add_parser("demo", help=_summary(DEMO), description=DEMO)
    demo.add_argument("--port", type=int, help="serve on this port (default 7860)")
    demo.add_argument("--project", metavar="PATH", help="project folder (default: the nearest folder upward with "
                                                        "infra/, else this one; an empty folder will do)")
    demo.set_defaults(handler=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    with in_terminal():  # messages name `aitk <verb>`, not the magic
        return _run(build_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    try:
        if args.verb == "demo":
            from .demo import run_demo

            with for_project(args.project):
                run_demo(port=args.port, project=args.project)
            return 0
        if getattr(args, "background", False):
            raise AitkError("--background is for notebooks: the command would end with the work; leave it out")
        cell, source = None, "stdin"
        if args.verb == "eval":
            cell = _eval_prompts(args)
            source = "stdin" if args.prompts == "-" else (args.prompts or args.resume)
        with body_read_from(source), for_project(args.project):  # suggested commands name what the user named
            result = args.handler(args, cell)
    except AitkError as e:
        print(f"aitk {args.verb}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if result is not None:
        # the card, as the notebook shows it (an Endpoint's str() is its URL alone, for f-strings)
        print(result.card() if isinstance(result, Displayable) else result)
    return _incomplete(args.verb, result)


# the exit status of an evaluation whose answers did not all come back (0 only when every one did)
INCOMPLETE = 3


def _eval_prompts(args: argparse.Namespace) -> str:
    if args.resume:
        if args.prompts is not None:
            raise AitkError("--resume sends the prompts saved in FILE; leave PROMPTS_FILE out")
        return ""
    if args.prompts is None:
        raise AitkError("give a PROMPTS_FILE (one prompt per line, or JSONL; '-' for stdin), or --resume FILE")
    return sys.stdin.read() if args.prompts == "-" else _read(args.prompts)


def _incomplete(verb: str, result) -> int:
    """INCOMPLETE, saying so on stderr, for an evaluation with answers missing; else 0."""
    if getattr(result, "complete", True):
        return 0
    from .evaluation.report import next_step, status_note

    print(f"aitk {verb}: {status_note(result)}; {next_step(result)}", file=sys.stderr)
    return INCOMPLETE


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise AitkError(f"cannot read prompts file {path} ({e.strerror})") from None


if __name__ == "__main__":
    sys.exit(main())
