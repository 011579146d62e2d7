"""Following the Azure console log (aitk_nb/azure/logs.py) against a scripted service: streams cut every
few lines with lines written during each gap, gaps longer than the service keeps, failed connections
in a row and after a good one, an expired stream token (issue 10, item 4). The same runs against the
Azure double in tests/azure/test_azure_logs.py, for a minute of real cuts."""
import contextlib
import datetime
import itertools

import pytest

from aitk_nb.azure import logs
from aitk_nb.azure.logs import MAX_TAIL, StreamRefused
from aitk_nb.azure.session import AzureError


START = datetime.datetime(2024, 1, 1)


class Service:
    """A replica's console log as the service serves it: greeting, the last `tail` lines, then (follow)
    new lines; `cut_every` cuts each connection after that many lines (greeting included);
    `gap` lines are written while the client reconnects; `script` makes connections fail."""

    def __init__(self, *, total: int, cut_every: int | None = None, gap: int = 0, script=()):
        self.lines: list[tuple[str, str]] = []
        self.total, self.cut_every, self.gap = total, cut_every, gap
        self.script = list(script)  # per connection: None (serve), an exception to raise, or a status
        self.connections, self.tails, self.tokens = 0, [], []
        self.token_calls = 0
        self.url = "https://logs/replica-1"

    def write(self, n: int = 1) -> None:
        for _ in range(n):
            if len(self.lines) < self.total:
                i = len(self.lines)
                # three lines share each timestamp: the service's clock is not finer than the writes
                stamp = (START + datetime.timedelta(milliseconds=i // 3)).isoformat(timespec="microseconds")
                self.lines.append((stamp + "0+00:00", f"line {i}"))

    def stream_url(self) -> str:
        return self.url

    def stream_token(self) -> str:
        self.token_calls += 1
        return f"token-{self.token_calls}"

    @contextlib.contextmanager
    def open_stream(self, url, token, tail, follow):
        self.connections += 1
        self.tails.append(tail)
        self.tokens.append(token)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            raise StreamRefused(step)
        if self.connections > 1:
            self.write(self.gap)  # written while the client was away
        yield self._serve(tail, follow)

    def _serve(self, tail, follow):
        sent = 0
        backlog = self.lines[max(0, len(self.lines) - tail):] if tail else []
        greeting = [('', "Connecting to the container 'inference'..."),
                    ('', "Successfully Connected to container: 'inference' [Revision: 'r', Replica: 'p']")]
        for stamp, text in itertools.chain(greeting, backlog, self._live(follow)):
            if self.cut_every is not None and sent >= self.cut_every:
                raise ConnectionError("ReadError: connection reset")
            sent += 1
            yield f'{{"TimeStamp": "{stamp}", "Log": "{text}"}}'

    def _live(self, follow):
        while follow and len(self.lines) < self.total:
            self.write()
            yield self.lines[-1]


def read(service, *, first_tail=0, until=None, sleeps=None):
    out = []
    for line in logs.follow(service, first_tail, sleep=(sleeps.append if sleeps is not None else lambda s: None)):
        out.append(line)
        if line == until:
            return out
    return out


@pytest.mark.parametrize("cut_every, gap", [(4, 0), (5, 1), (6, 2), (8, 3), (100, 10), (None, 0)])
def test_every_line_once_and_in_order_however_often_the_stream_is_cut(cut_every, gap):
    service = Service(total=2000, cut_every=cut_every, gap=gap)
    service.write(50)  # written before following began
    got = read(service, first_tail=5, until="line 1999")
    assert got == [f"line {i}" for i in range(45, 2000)]
    assert service.connections > (2000 / cut_every / 2 if cut_every else 0)  # cut again and again, followed on
    assert max(service.tails) <= MAX_TAIL


def test_a_gap_longer_than_the_service_keeps_is_said_where_it_is():
    """More lines written while reconnecting than the service sends back: said where they are missing."""
    service = Service(total=1000, cut_every=6, gap=400, script=[None])
    got = read(service, until="line 999")
    note = next(i for i, line in enumerate(got) if line.startswith(
        "[aitk: the log stream reconnected and could not fetch every line written meanwhile (asked for the last 300)"))
    assert got[:note] == [f"line {i}" for i in range(4)]
    shown = [int(line.split()[1]) for line in got if not line.startswith("[aitk:")]
    assert shown == sorted(set(shown)) and shown[-1] == 999  # in order, none twice; lost lines are said


def test_failures_in_a_row_back_off_and_a_good_connection_resets_them():
    boom = ConnectionError("ConnectError: refused")
    service = Service(total=30, cut_every=10, script=[boom] * 5 + [None] + [boom] * 5 + [None] * 50)
    sleeps: list[float] = []
    assert read(service, until="line 29", sleeps=sleeps) == [f"line {i}" for i in range(30)]
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 0.5, 1.0, 2.0, 4.0, 8.0]


def test_it_gives_up_after_six_failures_in_a_row_with_one_line():
    service = Service(total=10, script=[StreamRefused(503)] * 3 + [ConnectionError("ConnectError: refused")] * 3)
    with pytest.raises(AzureError) as e:
        read(service)
    assert str(e.value) == ("the log stream failed 6 times in a row (last: ConnectError: refused); "
                            "run `%aitk logs --follow` again")


@pytest.mark.timeout(30)
def test_a_stream_cut_before_its_first_line_every_time_backs_off_and_gives_up():
    """The service answers, sends its greeting and cuts, again and again: each is a failure in a row
    (it was an immediate reconnect, forever, at full speed)."""
    service = Service(total=10, cut_every=2)
    sleeps: list[float] = []
    with pytest.raises(AzureError, match=r"^the log stream failed 6 times in a row \(last: ReadError: connection reset\)"):
        read(service, sleeps=sleeps)
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0] and service.connections == 6


def test_an_expired_stream_token_is_replaced():
    service = Service(total=20, cut_every=8, script=[None, 401, None])
    assert read(service, until="line 19") == [f"line {i}" for i in range(20)]
    assert service.tokens[:3] == ["token-1", "token-1", "token-2"]


def test_a_new_replica_is_followed_from_the_start_of_its_log():
    service = Service(total=10)
    stream = logs.follow(service, 0, sleep=lambda s: None)
    assert [next(stream) for _ in range(10)] == [f"line {i}" for i in range(10)]
    service.url, service.lines, service.total = "https://logs/replica-2", [], 5  # a restart: a new replica
    service.write(5)
    assert [next(stream) for _ in range(5)] == [f"line {i}" for i in range(5)]
    assert service.tails[-1] == MAX_TAIL


def test_a_stream_cut_with_the_lines_it_sent_is_asked_again_for_fewer():
    """A cut soon after the start can reset the connection before any of it is read (NoResponse): the
    tail is halved, then lowered one by one near the limit, until a connection gets through; that is
    not a failure of the service."""
    service = Service(total=40, script=[logs.NoResponse("RemoteProtocolError: Server disconnected")] * 8)
    service.write(20)
    sleeps: list[float] = []
    got = read(service, first_tail=300, until="line 39", sleeps=sleeps)
    assert service.tails[:9] == [300, 150, 75, 37, 18, 9, 8, 7, 6]
    assert got == [f"line {i}" for i in range(14, 40)] and sleeps == [0.1] * 8
