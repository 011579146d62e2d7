"""The log streams of Container Apps, as `az containerapp logs show` reads them (azure-cli's
stream_containerapp_logs), with the token from `getAuthtoken` as a Bearer token:

- console logs (`--type console`, the default): a replica container's `logStreamEndpoint`,
  .../containerApps/{app}/revisions/{revision}/replicas/{replica}/containers/{container}/logstream.
  What the container wrote, kept per replica (a restart makes a new replica with a new log).
  Every connection starts with the service's two lines "Connecting to the container '{c}'..." and
  "Successfully Connected to container: '{c}' [Revision: '{r}', Replica: '{p}']", then the last
  `tailLines` lines (the CLI allows 0-300; the double caps there), then, with `follow=true`, new
  lines as they are written.
- system logs (`--type system`): the app's `eventStreamEndpoint`, .../containerApps/{app}/eventstream:
  platform events (revision and replica lifecycle, probe failures) as JSON objects with TimeStamp,
  Type, ContainerAppName, RevisionName, ReplicaName, Msg, Reason, EventSource and Count.

`output=json` (the CLI's default) sends each console line as {"TimeStamp": ..., "Log": ...};
`output=text` as "<timestamp> <line>". Timestamps are UTC with seven fractional digits."""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from .httpserver import DropConnection, Request, Response

if TYPE_CHECKING:
    from .apps import Apps

TAIL_CAP = 300
_REPLICA_PATH = re.compile(r"/revisions/([^/]+)/replicas/([^/]+)/containers/([^/]+)/logstream$", re.IGNORECASE)


@dataclass(frozen=True)
class LogLine:
    time: float
    text: str
    replica: str | None         # the replica that wrote it (console) or the event's replica (system)
    revision: str | None = None
    event: dict | None = None   # system events: the JSON object


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e7):07d}+00:00"


class LogStreams:
    def __init__(self, apps: "Apps"):
        self.apps = apps
        self.d = apps.d
        self.events: dict[str, list[LogLine]] = {}     # app name -> system events

    # -- writing -----------------------------------------------------------------------------------------------
    def console(self, app: str, line: str, replica: str | None = None) -> None:
        """A line the app's container wrote (by default: the current replica of its latest revision)."""
        with self.d.state.lock:
            self.d.state.logs.setdefault(app, []).append(LogLine(time.time(), line, replica or self.apps.current_replica(app)))

    def event(self, app: str, reason: str, message: str, *, revision: str | None = None, replica: str | None = None,
              kind: str = "Normal") -> None:
        t = time.time()
        body = {"TimeStamp": stamp(t), "Type": kind, "ContainerAppName": app, "RevisionName": revision or "",
                "ReplicaName": replica or "", "Msg": message, "Reason": reason, "EventSource": "ContainerAppController", "Count": 1}
        with self.d.state.lock:
            self.events.setdefault(app, []).append(LogLine(t, message, replica, revision, body))

    def start_writer(self, app: str, *, interval: float, count: int, prefix: str = "line") -> threading.Thread:
        """A container that keeps logging: `count` numbered lines ("{prefix} 0", "{prefix} 1", ...)
        one every `interval` seconds, from a background thread (join it to wait for the last)."""
        def run():
            for i in range(count):
                if self.d.stopped.is_set():
                    return
                self.console(app, f"{prefix} {i}")
                time.sleep(interval)

        thread = threading.Thread(target=run, daemon=True, name=f"log-writer-{app}")
        thread.start()
        return thread

    # -- serving ---------------------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        text = {"Content-Type": "text/plain; charset=utf-8"}
        m = re.search(r"/containerApps/([^/]+)", req.path, re.IGNORECASE)
        if m is None:
            return Response(404, text, b"Not found")
        app_id = re.split(r"/eventstream|/revisions/", req.path[len("/logstream"):], flags=re.IGNORECASE)[0].lower()
        auth = req.header("authorization") or ""
        entry = self.apps.auth_tokens.get(auth[7:] if auth.startswith("Bearer ") else "")
        if entry is None or entry[1] < time.time() or entry[0] != app_id:
            return Response(401, text, b"Unauthorized: pass the token from getAuthtoken as a Bearer token")
        rec = self.apps.records.get(app_id)
        if rec is None or rec.deleted:
            return Response(404, text, b"Container app not found")
        try:
            tail = max(0, min(TAIL_CAP, int(req.q("tailLines", "20"))))
        except ValueError:
            return Response(400, text, b"tailLines must be an integer")
        follow = (req.q("follow", "false") or "").lower() == "true"
        as_json = (req.q("output", "json") or "json").lower() != "text"
        cut = self.d.faults.stream_cut(req.method, req.target)
        replica = _REPLICA_PATH.search(req.path)
        if replica is None:
            source = _Source(lambda: self.events.get(rec.name, []), lambda e: True, lambda: False)
            lines = self._serve(source, [], tail, follow, lambda e: _event_line(e, as_json), cut)
        else:
            revision, replica_name, container = replica.groups()
            if not any(r["name"] == replica_name for rev in rec.revisions if rev.name.lower() == revision.lower()
                       for r in self.apps.replicas_of(rec, rev)):
                return Response(404, text, f"Replica '{replica_name}' of revision '{revision}' was not found".encode())
            greeting = [f"Connecting to the container '{container}'...",
                        f"Successfully Connected to container: '{container}' [Revision: '{revision}', Replica: '{replica_name}']"]
            source = _Source(lambda: self.d.state.logs.get(rec.name, []), lambda e: e.replica == replica_name,
                             lambda: self.apps.current_replica(rec.name) != replica_name)
            lines = self._serve(source, greeting, tail, follow, lambda e: _console_line(e, as_json), cut)
        return Response(200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache"}, stream=lines)

    def _serve(self, source: "_Source", greeting: list[str], tail: int, follow: bool, fmt, cut: int | None) -> Iterator[bytes]:
        """The stream; `cut` (a fault) drops the connection right after that many lines."""
        sent = 0

        def emit(entries) -> Iterator[bytes]:
            nonlocal sent
            for e in entries:
                yield fmt(e)
                sent += 1
                if cut is not None and sent >= cut:
                    raise DropConnection()

        yield from emit(LogLine(time.time(), g, None) for g in greeting)
        with self.d.state.lock:
            entries = source.entries()
            start = len(entries)
            backlog = [e for e in entries[:start] if source.keep(e)][-tail:] if tail else []
        yield from emit(backlog)
        if not follow:
            return
        idle_until = time.monotonic() + self.d.log_follow_seconds
        while time.monotonic() < idle_until and not self.d.stopped.is_set() and not source.gone():
            with self.d.state.lock:
                entries = source.entries()
                new, start = [e for e in entries[start:] if source.keep(e)], len(entries)
            if new:
                idle_until = time.monotonic() + self.d.log_follow_seconds
            yield from emit(new)
            time.sleep(0.02)


@dataclass
class _Source:
    """Where a stream reads: all entries, which of them it serves, and whether its writer is gone
    (a replica that a restart replaced)."""

    entries: Callable[[], list[LogLine]]
    keep: Callable[[LogLine], bool]
    gone: Callable[[], bool]


def _console_line(e: LogLine, as_json: bool) -> bytes:
    if as_json:
        return (json.dumps({"TimeStamp": stamp(e.time), "Log": e.text}) + "\n").encode()
    return f"{stamp(e.time)} {e.text}\n".encode()


def _event_line(e: LogLine, as_json: bool) -> bytes:
    if as_json:
        return (json.dumps(e.event) + "\n").encode()
    return f"{e.event['TimeStamp']} [{e.event['Type']} {e.event['Reason']}] {e.event['Msg']}\n".encode()
