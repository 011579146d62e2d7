"""The app's console log, as `az containerapp logs show` reads it: the log stream of the first container
of the latest revision's first replica (its `logStreamEndpoint`), with the token from `getAuthtoken`.

The service sends two greeting lines on each connection, then the last `tailLines` lines (at most 300),
then, when following, new lines as they come; it may close or cut a followed stream at any time. Each
line comes (`output=json`) with the service's timestamp. Following survives that (issue 10):

- it reconnects until interrupted; only consecutive failures back off, a good connection resets them,
  and after `MAX_FAILURES` in a row it stops with one line that says so;
- each reconnection asks back for the lines not received yet and one already shown (`Overlap`, which
  learns how many are written while reconnecting); `Resume` drops the repeated ones by timestamp and
  text; when the first line is newer than the last one shown (lines written during the gap would be
  lost) it looks further back, and where the service no longer has them it says lines are missing;
- a connection reset before any answer (a cut soon after the start can take the lines already sent
  with it) is asked again for fewer lines, and is not counted as a failure;
- a restart makes a new replica with a log of its own: that log is shown from its start.
"""
from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass
from typing import Callable, ContextManager, Generator, Iterator, Protocol

from ..invocation import command
from .session import AzureError

MAX_TAIL = 300  # the most lines the service sends back (az containerapp logs show --tail allows 0-300)
MAX_FAILURES = 6  # consecutive failed connections before following gives up
_GREETING = ("Connecting to the container ", "Successfully Connected to container: ")


class NoResponse(ConnectionError):
    """The service took the request and closed the connection before answering. When a stream is cut
    soon after it starts, the reset can take the lines already sent with it: a shorter tail may pass."""


@dataclass(frozen=True)
class Line:
    stamp: str  # the service's timestamp (UTC, fixed width: sorts as text); "" when it sent none
    text: str


def parse(raw: str) -> Line | None:
    """A line of the stream; None for the service's greeting."""
    try:
        item = json.loads(raw)
    except ValueError:
        item = None
    line = Line(str(item.get("TimeStamp", "")), str(item.get("Log", ""))) if isinstance(item, dict) else Line("", raw)
    return None if line.text.startswith(_GREETING) else line


class Resume:
    """What a followed stream has shown, to tell a line repeated by a reconnection's overlap from a new one.
    Lines are ordered by the service's timestamp; several may share one, so the texts shown with the
    last timestamp are counted, and each connection's overlap uses up its own copy of the count."""

    def __init__(self) -> None:
        self.stamp: str | None = None  # the last shown line's timestamp
        self.at_stamp: collections.Counter[str] = collections.Counter()  # texts shown with that timestamp
        self._unmatched: collections.Counter[str] = collections.Counter()  # of those, not seen again on this connection

    @property
    def started(self) -> bool:
        return self.stamp is not None

    def connected(self) -> None:
        self._unmatched = collections.Counter(self.at_stamp)

    def is_new(self, line: Line) -> bool:
        if self.stamp is None or not line.stamp:
            return True
        return line.stamp > self.stamp or (line.stamp == self.stamp and self._unmatched[line.text] == 0)

    def shown(self, line: Line) -> None:
        if line.stamp != self.stamp:
            self.stamp, self.at_stamp = line.stamp, collections.Counter()
        self.at_stamp[line.text] += 1

    def repeat(self, line: Line) -> None:
        """An old line seen again on this connection."""
        if line.stamp == self.stamp:
            self._unmatched[line.text] -= 1


class StreamRefused(Exception):
    """The service answered the stream request with an error status."""

    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


class Connection(Protocol):
    """How the stream is opened (`ContainerApp` is one)."""

    def stream_url(self) -> str:
        """The console log stream of the current replica's container."""

    def stream_token(self) -> str:
        """A token for the stream (a new one on each call)."""

    def open_stream(self, url: str, token: str, tail: int, follow: bool) -> ContextManager[Iterator[str]]:
        """The raw lines; raises `StreamRefused` on an error status, `NoResponse` when the connection
        closed before the answer, another ConnectionError when it cannot be made or is cut."""


def tail(conn: Connection, n: int) -> list[str]:
    """The last `n` lines (at most `MAX_TAIL`)."""
    with conn.open_stream(conn.stream_url(), conn.stream_token(), min(n, MAX_TAIL), False) as raw:
        return [line.text for line in map(parse, raw) if line is not None]


def follow(conn: Connection, first_tail: int, *, sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """The last `first_tail` lines, then every new line as it comes, until the caller stops."""
    resume, ask, failures = Resume(), Overlap(min(first_tail, MAX_TAIL)), 0
    url = token = previous = None
    while True:
        try:
            if url is None:  # first, or after the service ended a stream: the replica may be a new one
                url = conn.stream_url()
                if previous is not None and url != previous:  # a restart: the new replica's log from its start
                    resume, ask = Resume(), Overlap(MAX_TAIL)
                previous = url
            token = token or conn.stream_token()
            with conn.open_stream(url, token, ask.tail, True) as raw:
                ended = yield from _read(raw, resume, ask)
            failures = 0  # a connection that served lines (or that the service ended): failures start again
            if ended:  # the service closed it (an idle stream, or the replica stopped)
                url = None
                sleep(0.2)
        except StreamRefused as e:
            if e.status == 401:
                token = None  # expired: a new one
            else:
                url = None
            failures = _failed(failures, e)
            sleep(_backoff(failures))
        except NoResponse as e:
            if ask.shorter():  # cut with the lines it sent: ask for fewer (not a failure of the service)
                sleep(0.1)
                continue
            failures = _failed(failures, e)
            sleep(_backoff(failures))
        except (AzureError, OSError) as e:  # no replica yet, the token call failed, the connection failed
            url = None
            failures = _failed(failures, e)
            sleep(_backoff(failures))


class Overlap:
    """How many lines to ask back for on the next connection: the lines known not received yet, one
    already shown (to prove there is no gap), and `slack` for the lines written while reconnecting,
    learnt from how many shown lines each reconnection repeated beyond that one. `ceiling`: the longest
    tail that the connection lets through (lowered when a burst of lines is cut, and raised again slowly)."""

    def __init__(self, tail: int):
        self.tail, self.slack, self.ceiling = tail, 2, MAX_TAIL
        self.planned = False  # `tail` was set with `slack`: what the next connection repeats measures it
        self.passed = 0  # connections through in a row since the ceiling last moved

    def gap(self) -> bool:
        """The first line was newer than the last shown: look further back, if it can."""
        if self.tail >= self.ceiling:
            return False
        self.slack += 1
        self.tail, self.planned = min(self.ceiling, 2 * self.tail + 1), False
        return True

    def shorter(self) -> bool:
        """The connection closed before the answer: ask for fewer lines (half, then one less near the
        limit, which then stays there), if it can."""
        if self.tail <= 1:
            return False
        self.ceiling = self.tail = self.tail // 2 if self.tail > 16 else self.tail - 1
        self.planned, self.passed = False, 0
        return True

    def after(self, received: int, repeated: int) -> None:
        """A connection gave `received` lines, the first `repeated` of them shown before (all of them:
        it was cut before the new ones, and more were to repeat)."""
        self.passed += 1
        if self.passed >= 20 and self.ceiling < MAX_TAIL:  # try a longer tail again now and then
            self.ceiling, self.passed = self.ceiling + 1, 0
        if not received:
            return
        if self.planned:
            written = max(0, 1 + self.slack - repeated)  # while reconnecting (at most, when all repeated)
            self.slack = written if repeated < received else min(self.slack, written)
        self.tail = min(self.ceiling, max(0, self.tail - received) + 1 + self.slack)
        self.planned = True


def _read(raw: Iterator[str], resume: Resume, ask: Overlap) -> Generator[str, None, bool]:
    """Show the new lines of one connection; whether the service ended the stream (rather than the
    connection being cut, or a gap to look behind)."""
    received = repeated = 0
    resume.connected()
    try:
        for line in map(parse, raw):
            if line is None:
                continue
            if not received and resume.started and resume.is_new(line):
                if ask.gap():  # the overlap did not reach the last line shown: look further back
                    return False
                yield (f"[aitk: the log stream reconnected and could not fetch every line written meanwhile "
                       f"(asked for the last {ask.tail}); some before this one are not shown]")
            received += 1
            if resume.is_new(line):
                resume.shown(line)
                yield line.text
            else:
                resume.repeat(line)
                repeated += 1
        ended = True
    except OSError:  # cut mid-stream: reconnect at once, to the same replica
        if not received:  # cut before its first line: a failed connection (counted, backed off), not a cut
            raise
        ended = False
    ask.after(received, repeated)
    return ended


def _failed(failures: int, error: Exception) -> int:
    failures += 1
    if failures >= MAX_FAILURES:
        raise AzureError(f"the log stream failed {failures} times in a row (last: {error}); "
                         f"run {command('logs --follow')} again") from None
    return failures


def _backoff(failures: int) -> float:
    return min(0.5 * 2 ** (failures - 1), 8.0)
