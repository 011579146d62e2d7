"""The container's command on this machine: the mount path (`/mount`) becomes the share folder, which
may be called anything (`my proj`, `pj;touch X;x`). An argument passed without a shell gets the folder
as it is; in a shell script (`bash -c SCRIPT`) each occurrence is quoted for the quoting context it
sits in, so the folder stays one word and its characters are never run (issue 10)."""
from __future__ import annotations

import os
import re
import shlex

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
_SCRIPT_FLAG = re.compile(r"-[a-zA-Z]*c[a-zA-Z]*")  # -c, -ec, -lc: the next argument is the script
_PATH_CHAR = re.compile(r"[\w.-]")


def with_mount(command: list[str], mount_path: str, folder: str) -> list[str]:
    """`command` with `mount_path` pointing at `folder`: plain arguments as they are, a shell's script
    quoted. Only whole path components match (`/mountain` and `x/mount` are left alone)."""
    out, script_next = [], False
    is_shell = bool(command) and os.path.basename(command[0]) in SHELLS
    for part in command:
        if script_next:
            out.append(ShellScript(part).with_path(mount_path, folder))
            script_next = False
            continue
        script_next = is_shell and bool(_SCRIPT_FLAG.fullmatch(part))
        out.append(_replace(part, mount_path, lambda: folder))
    return out


def _matches(text: str, i: int, path: str) -> bool:
    if not text.startswith(path, i):
        return False
    before = text[i - 1] if i else ""
    after = text[i + len(path)] if i + len(path) < len(text) else ""
    return not (before and (_PATH_CHAR.match(before) or before == "/")) and not (after and _PATH_CHAR.match(after))


def _replace(text: str, path: str, new) -> str:
    out, i = [], 0
    while i < len(text):
        if _matches(text, i, path):
            out.append(new())
            i += len(path)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class ShellScript:
    """A POSIX shell script read for its quoting contexts: unquoted, 'single', "double", $'ansi', and
    command substitutions ($(...), `...`) nested in them."""

    def __init__(self, text: str):
        self.text = text

    def with_path(self, path: str, folder: str) -> str:
        text, out, i = self.text, [], 0
        stack = ["word"]  # the quoting context at i: word (unquoted), single, double, ansi, subst, parens, backtick
        while i < len(text):
            context, ch, pair = stack[-1], text[i], text[i:i + 2]
            if _matches(text, i, path):
                out.append(_quoted(folder, context))
                i += len(path)
                continue
            quoted = context in ("single", "ansi")
            escaped = ch == "\\" and context != "single"  # taken as it is ($'...' escapes too)
            step = pair if escaped or (not quoted and pair in ("$(", "$'")) else ch
            out.append(step)
            i += len(step)
            if escaped:
                continue
            if quoted:
                if ch == "'":
                    stack.pop()
            elif context == "double":
                if ch == '"':
                    stack.pop()
                elif step == "$(":
                    stack.append("subst")
                elif ch == "`":
                    stack.append("backtick")
            elif step == "$(":  # below: unquoted text (a word, or inside a substitution)
                stack.append("subst")
            elif step == "$'":
                stack.append("ansi")
            elif ch in "'\"":
                stack.append("single" if ch == "'" else "double")
            elif ch == "(":
                stack.append("parens")
            elif ch == ")" and context in ("subst", "parens"):
                stack.pop()
            elif ch == "`" and context == "backtick":
                stack.pop()
            elif ch == "`":
                stack.append("backtick")
        return "".join(out)


def _quoted(folder: str, context: str) -> str:
    """`folder` as one literal word where it appears."""
    if context == "single":
        return "'" + shlex.quote(folder) + "'"  # close the quote, the quoted folder, reopen
    if context == "ansi":
        return "'" + shlex.quote(folder) + "$'"
    if context == "double":
        return re.sub(r'([\\$"`])', r"\\\1", folder)  # inside "...": only these are special
    if context == "backtick":  # `...` strips one backslash before these before running its command
        return re.sub(r"([\\$`])", r"\\\1", shlex.quote(folder))
    return shlex.quote(folder)
