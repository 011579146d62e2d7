"""Faults injected on demand; each fires at most `count` times."""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field


@dataclass
class _Rule:
    kind: str
    method: str
    pattern: re.Pattern
    count: int
    args: dict = field(default_factory=dict)
    fired: int = 0

    def matches(self, method: str, target: str) -> bool:
        return (self.method in ("*", method.upper()) and self.fired < self.count
                and self.pattern.search(target) is not None)


class Faults:
    """`path_regex` is searched (re.search) in the request target: the path *and* query string as
    sent, e.g. r"comp=range" or r"/containerApps/[^/]+$". `method` may be "*"."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self.deployment_failures: list[dict] = []
        self.never_healthy: set[str] = set()   # app names, or "*" for every app

    def _add(self, kind: str, method: str, path_regex: str, count: int, **args) -> _Rule:
        rule = _Rule(kind, method.upper(), re.compile(path_regex), count, args)
        with self._lock:
            self._rules.append(rule)
        return rule

    def throttle(self, method: str, path_regex: str, count: int = 1, retry_after: float = 1) -> None:
        """429 Too Many Requests with a Retry-After header (ARM's throttling)."""
        self._add("throttle", method, path_regex, count, retry_after=retry_after)

    def error(self, method: str, path_regex: str, status: int = 500, count: int = 1,
              code: str | None = None, retry_after: float | None = None) -> None:
        """An error status (500, 503, ...). On the Files data plane a 503 carries ServerBusy, as
        Azure Storage throttles; on ARM an `{"error": {...}}` body."""
        self._add("error", method, path_regex, count, status=status, code=code, retry_after=retry_after)

    def reset_connection(self, method: str, path_regex: str, count: int = 1, after_bytes: int = 0) -> None:
        """Read `after_bytes` of the request body, then drop the TCP connection (RST), no response."""
        self._add("reset", method, path_regex, count, after_bytes=after_bytes)

    def drop_stream(self, path_regex: str = r"/logstream/", count: int = 1, after_lines: int = 1) -> None:
        """A streamed response (a log stream) is cut (RST) after `after_lines` lines, `count` times."""
        self._add("drop_stream", "GET", path_regex, count, after_lines=after_lines)

    def cut_log_stream(self, every: int, for_seconds: float, path_regex: str = r"/logstream/") -> None:
        """For the next `for_seconds`, every log stream connection is cut (RST) after `every` lines
        (the service's greeting lines count), however often the client reconnects."""
        self._add("cut_stream", "GET", path_regex, 1 << 30, after_lines=every, until=time.monotonic() + for_seconds)

    def fail_deployment(self, code: str = "InvalidTemplateDeployment", message: str = "The deployment failed.",
                        resource: str | None = "Microsoft.App/containerApps", count: int = 1) -> None:
        """The next deployment(s) end Failed with this ARM error at `resource`
        ("Type/name", or just "Type": the first resource of that type; None: the last resource)."""
        self.deployment_failures.append({"code": code, "message": message, "resource": resource, "left": count})

    def revision_never_healthy(self, app: str = "*") -> None:
        """The app's revisions stay Unhealthy (startup probe never passes; /health never answers 200)."""
        self.never_healthy.add(app)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
        self.deployment_failures.clear()
        self.never_healthy.clear()

    # -- used by the double ------------------------------------------------------------------------
    def take(self, kinds: tuple[str, ...], method: str, target: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.kind in kinds and rule.matches(method, target):
                    rule.fired += 1
                    return rule
        return None

    def stream_cut(self, method: str, target: str) -> int | None:
        """After how many lines to cut this stream (None: not at all)."""
        with self._lock:
            self._rules = [r for r in self._rules if r.args.get("until", float("inf")) > time.monotonic()]
        rule = self.take(("drop_stream", "cut_stream"), method, target)
        return None if rule is None else int(rule.args["after_lines"])

    def take_deployment_failure(self) -> dict | None:
        for f in self.deployment_failures:
            if f["left"] > 0:
                f["left"] -= 1
                return f
        return None

    def is_never_healthy(self, app: str) -> bool:
        return "*" in self.never_healthy or app in self.never_healthy

    @property
    def pending(self) -> list[tuple[str, str, str, int]]:
        """(kind, method, regex, remaining) of faults that have not fired their count yet."""
        with self._lock:
            return [(r.kind, r.method, r.pattern.pattern, r.count - r.fired) for r in self._rules if r.fired < r.count]
