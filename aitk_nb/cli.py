"""`aitk <verb>`: the magics' verbs for terminals and CI, with the same options."""
from __future__ import annotations

import argparse
import sys

from . import commands
from .errors import AitkError
from .invocation import in_terminal


def _summary(doc: str | None) -> str:
    """A verb's docstring's first sentence, for the list of verbs in `aitk --help`."""
    first = " ".join((doc or "").strip().split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aitk", description="Provision, deploy and evaluate fine-tuned LoRA adapters.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, handler in commands.VERBS.items():
        p = sub.add_parser(verb, parents=[handler.parser], help=_summary(handler.parser.description),
                           description=handler.parser.description)
        p.set_defaults(handler=handler)
        if verb == "eval":
            p.add_argument("prompts", metavar="PROMPTS_FILE", nargs="?",
                           help="prompts: one per line or JSONL ('-' for stdin); none with --resume")
    demo = sub.add_parser("demo", help="the whole flow on the local target with the demo model and adapter")
    demo.add_argument("--port", type=int, help="serve on this port (default 7860)")
    demo.add_argument("--project", metavar="PATH", help="project folder (default: this repository)")
    demo.set_defaults(handler=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    with in_terminal():  # messages name `aitk <verb>`, not the magic
        return _run(build_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    try:
        if args.verb == "demo":
            from .demo import run_demo

            run_demo(port=args.port, project=args.project)
            return 0
        if getattr(args, "background", False):
            raise AitkError("--background is for notebooks: the command would end with the work; leave it out")
        cell = None
        if args.verb == "eval":
            cell = _eval_prompts(args)
        result = args.handler(args, cell)
    except AitkError as e:
        print(f"aitk {args.verb}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if result is not None:
        print(result)
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
