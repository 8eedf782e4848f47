"""The scenario suite: one script of requests, meter values and clock steps that every board
implementation (host build, Python emulator, simulated AVR...) must answer the same way.

A driver runs one board on a clock it controls (class Driver). A scenario talks to the board
through a Run, which keeps a transcript: every line the board sent, decoded and checked under
its session, in order. Transcripts of two drivers must be equal: replies exactly, except for
the random session id (SESSION= and so the CRC, which were checked); unsolicited frames
without their time field T=.

A new driver (e.g. fwavr's simavr one) subclasses Driver; test_scenarios.py runs every
scenario on it and compares with the Python emulator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_bridge import protocol
from firmware_bridge.protocol import EVENT, REPLY, REQUEST

TICK_MS = 100  # the scenarios' clock step where they watch for something to happen


@dataclass(frozen=True)
class BoardSpec:
    """What a scenario's board is: its HAL config, and where its millisecond counter starts."""

    board_id: str = "sc1"
    kind: str = "consumer"
    relays: int = 1
    failsafe_ms: int = 5000
    report_ms: int = 1000
    millis_start: int = 0  # first hal_millis(): near 2**32 to cross the wrap
    meter_plugged: bool = True  # False: the meter never answers from boot on


class Driver(ABC):
    """One board under a scripted clock and meter. The scripted meter (every target's HAL in
    its simulation mode): a request every 100 ms to the configured address, answered 20 ms
    later with the values of the last set_meter before the request (a Modbus meter samples
    when asked; the emulator's when it answers), or a fault 100 ms after the request while
    unplugged."""

    name = "driver"

    @abstractmethod
    def open(self, spec: BoardSpec) -> None:
        """Power the board on at clock 0 (the meter plugged as spec says, values all 0)."""

    @abstractmethod
    def close(self) -> None:
        """Stop the board and free everything (safe to call twice)."""

    @abstractmethod
    def send_line(self, line: bytes) -> None:
        """Bytes onto the board's UART (one frame with its '\\n')."""

    @abstractmethod
    def read_line(self, timeout_s: float = 5.0) -> bytes:
        """The board's next line (without '\\n'); AssertionError if none within the (wall)
        bound, which only guards against a hung board: time on the board does not pass."""

    @abstractmethod
    def pending_lines(self) -> list[bytes]:
        """Every line the board sent so far and not yet read (complete once advance_ms or
        a reply returned)."""

    @abstractmethod
    def set_meter(self, mv: int, ma: int, dw: int, mwh_in: int, mwh_out: int,
                  soc_milli: int = -1, pv_dw: int = -1) -> None:
        """The values the meter answers from now on."""

    @abstractmethod
    def unplug_meter(self) -> None:
        """The meter stops answering (its requests time out)."""

    @abstractmethod
    def plug_meter(self) -> None:
        """The meter answers again."""

    @abstractmethod
    def advance_ms(self, ms: int) -> None:
        """Move the board's clock ms on, the board running every deadline on the way;
        returns once it polled at the new time (0: let it poll once, now)."""

    @abstractmethod
    def relays(self) -> str:
        """The relay outputs as the hardware has them ("10": relay 0 closed)."""


@dataclass
class Run:
    """A scenario's connection to one board: requests, clock steps and the transcript."""

    driver: Driver
    spec: BoardSpec
    transcript: list[tuple[str, ...]] = field(default_factory=list)
    session: str | None = None
    next_id: int = 1
    clock_ms: int = 0

    def note(self, what: str) -> None:
        """A step marker, so a difference shows where it happened."""
        self.transcript.append(("step", what))

    def request(self, verb: str, *args: object) -> tuple[str, ...]:
        """Send one request; its reply (normalised) once the board has also polled after it."""
        req_id, self.next_id = self.next_id, self.next_id + 1
        key = "" if verb == "HELLO" else self.session or ""
        self.driver.send_line(protocol.encode(REQUEST, req_id, verb, *args, session=key))
        while True:
            line = self.driver.read_line()
            entry = self._take(line, hello=verb == "HELLO")
            if entry[0] == "reply" and entry[1] == str(req_id):
                break
        self.advance(0)  # events the request caused (a HELLO's reading, EXHAUSTED)
        return entry

    def advance(self, ms: int) -> list[tuple[str, ...]]:
        """Move the clock; the unsolicited lines that came meanwhile (normalised)."""
        self.driver.advance_ms(ms)
        self.clock_ms += ms
        return [self._take(line) for line in self.driver.pending_lines()]

    def until(self, verb: str, limit_ms: int, step_ms: int = TICK_MS) -> int:
        """Advance in steps until an event with this verb comes; the clock then (ms)."""
        waited = 0
        while waited < limit_ms:
            got = self.advance(step_ms)
            waited += step_ms
            if any(e[0] == "event" and e[2] == verb for e in got):
                return self.clock_ms
        raise AssertionError(f"{self.driver.name}: no {verb} within {limit_ms} ms")

    def meter(self, mwh_in: int, mwh_out: int = 0, dw: int = 0) -> None:
        """Script the meter: 12.6 V, the current dw gives, these counters. Only values a
        PZEM-017 can carry (0.01 V, 0.01 A, 0.1 W, whole Wh), so the AVR can run them too."""
        assert mwh_in % 1000 == 0 and mwh_out % 1000 == 0, "whole Wh only"
        self.driver.set_meter(12600, int(round(dw * 1000 / 126, -1)), dw, mwh_in, mwh_out)

    def _take(self, raw: bytes, hello: bool = False) -> tuple[str, ...]:
        entry = normalise(raw.rstrip(b"\r"), self.session, hello)
        if entry[0] == "reply" and entry[2:4] == ("OK", "HELLO"):
            hello_fields = protocol.parse_hello(entry[4:])
            self.session = hello_fields.session
            entry = (*entry[:4], *(a if not a.startswith("SESSION=") else "SESSION=*"
                                   for a in entry[4:]))
        self.transcript.append(entry)
        return entry


def normalise(raw: bytes, session: str | None, hello: bool = False) -> tuple[str, ...]:
    """("reply"|"event"|"boot", id, verb, args...) of a line checked under its key; an
    event's T= is dropped (its timing is the board's own), an ERR's text too; undecodable
    lines are kept raw."""
    keys = ["", session or ""] if hello or raw.startswith(b"!0 BOOT ") else [session or ""]
    for key in keys:
        try:
            frame = protocol.decode(raw, key)
        except protocol.FrameError:
            continue
        if frame.kind == EVENT and frame.req_id == 0 and frame.verb == "BOOT":
            return ("boot", "0", frame.verb, *frame.args)
        kind = "reply" if frame.kind == REPLY else "event"
        args = frame.args
        if frame.verb == "ERR":
            args = args[:1]  # the code; the text is for people (PROTOCOL.md: texts differ)
        if kind == "event":
            args = tuple(a for a in args if not a.startswith("T="))
        return (kind, str(frame.req_id), frame.verb, *args)
    return ("undecodable", raw.decode("ascii", "replace"))


def start(driver: Driver, spec: BoardSpec, meter: tuple[int, int] = (1000, 0)) -> Run:
    """Power the board on, script its meter, take the boot banner."""
    driver.open(spec)
    run = Run(driver, spec)
    run.meter(*meter)
    banner = driver.read_line()
    run._take(banner)
    assert run.transcript[-1][0] == "boot", run.transcript[-1]
    return run


# -- the scenarios: each returns its transcript ----------------------------------------------


def hello_and_read(driver: Driver) -> list[tuple[str, ...]]:
    """No values before the meter's first answer, then values; periodic readings."""
    run = start(driver, BoardSpec())
    run.note("hello at clock 0: the meter has not answered yet")
    run.request("HELLO")
    wait = run.request("READ")
    assert "METER=WAIT" in wait and not any(a.startswith("V=") for a in wait), wait
    run.note("after the first answer")
    run.advance(300)
    values = run.request("READ")
    assert "V=12.60" in values and "WHIN=1.000" in values and "METER=WAIT" not in values
    run.note("periodic readings")
    run.advance(2000)
    return run.transcript


def relay(driver: Driver) -> list[tuple[str, ...]]:
    """Relays switch as confirmed; the counters follow the meter; bad arguments refused."""
    run = start(driver, BoardSpec(relays=2, report_ms=5000))
    run.request("HELLO")
    run.advance(300)
    run.request("RELAY", 1, 1)
    assert driver.relays() == "01"
    run.meter(3000, dw=1200)
    run.advance(300)
    read = run.request("READ")
    assert "RELAYS=01" in read and "WHIN=3.000" in read and "P=120.0" in read
    assert "I=9.520" in read
    run.request("RELAY", 1, 0)
    run.request("RELAY", 2, 1)
    run.request("RELAY", 0, 2)
    run.request("HB")
    run.request("NOPE")
    assert driver.relays() == "00"
    return run.transcript


def budget_exhaustion(driver: Driver) -> list[tuple[str, ...]]:
    """A budget counts down with the meter and opens its relay at 0, said once."""
    run = start(driver, BoardSpec(report_ms=5000))
    run.request("HELLO")
    run.advance(300)
    run.request("BUDGET", 0, "5.000")
    run.request("RELAY", 0, 1)
    run.meter(4000)
    run.advance(300)
    assert "BUDGET=2.000" in run.request("READ")
    run.note("the budget runs out")
    run.meter(7000)
    events = run.advance(300)
    assert ("event", "2", "EXHAUSTED", "0") in events, events
    assert driver.relays() == "0"
    run.request("READ")
    refused = run.request("RELAY", 0, 1)
    assert refused[2:4] == ("ERR", "3"), refused
    run.request("BUDGET", 0, "-")
    run.request("RELAY", 0, 1)
    run.request("BUDGET", 0, "0")  # an empty budget on a closed relay opens it at once
    assert driver.relays() == "0"
    return run.transcript


def failsafe(driver: Driver, spec: BoardSpec | None = None) -> list[tuple[str, ...]]:
    """Relays open 5 s (board clock, one tick) after the last fresh request; the energy the
    meter reports after the opening is still charged to the relay's budget."""
    spec = spec or BoardSpec(relays=2, report_ms=60000)
    run = start(driver, spec)
    run.request("HELLO")
    run.advance(300)
    run.request("BUDGET", 0, "10")
    run.request("RELAY", 0, 1)
    run.request("RELAY", 1, 1)
    for _ in range(3):  # heartbeats keep it closed
        run.advance(1000)
        run.request("HB")
    beat = run.clock_ms
    run.advance(4990)
    assert driver.relays() == "11"
    run.meter(4000)  # energy that flowed up to the opening: the answers after it carry it
    tripped = run.until("FAILSAFE", 1000, step_ms=10)
    assert spec.failsafe_ms - 10 < tripped - beat <= spec.failsafe_ms + 10, tripped - beat
    assert driver.relays() == "00"
    run.advance(200)
    read = run.request("READ")
    assert "RELAYS=00" in read and "BUDGET=7.000,-" in read, read
    run.note("re-armed by a fresh request")
    run.request("RELAY", 1, 1)
    fresh = run.clock_ms
    assert abs(run.until("FAILSAFE", 6000) - fresh - spec.failsafe_ms) <= TICK_MS
    return run.transcript


def opened_in_flight(driver: Driver) -> list[tuple[str, ...]]:
    """A relay opened while a meter request is on its way still pays for what the meter
    counted before the opening: a Modbus meter's answer after the opening carries the counter
    of its request (before the energy), only the next answer the new one."""
    run = start(driver, BoardSpec(report_ms=60000))
    run.request("HELLO")
    run.advance(300)
    run.request("BUDGET", 0, "10")
    run.request("RELAY", 0, 1)
    # At 712 ms the meter was last asked at 700 (host, emulator: every 100 ms from boot) or
    # 710 (the STM32 image's pace): 3 Wh pass the closed relay after that request...
    run.advance(412)
    run.meter(4000)
    run.advance(3)
    run.request("RELAY", 0, 0)  # ...and it opens before that request's answer (20 ms after)
    run.advance(300)
    read = run.request("READ")
    assert "WHIN=4.000" in read and "RELAYS=0" in read and "BUDGET=7.000" in read, read
    return run.transcript


def meter_unplugged(driver: Driver) -> list[tuple[str, ...]]:
    """A dead meter: the bridge is told, budget-held relays open, others stay; back again."""
    run = start(driver, BoardSpec(relays=2, report_ms=5000))
    run.request("HELLO")
    run.advance(300)
    run.request("BUDGET", 0, "10")
    run.request("RELAY", 0, 1)
    run.request("RELAY", 1, 1)
    run.meter(3000)
    run.advance(200)
    driver.unplug_meter()
    events = run.advance(400)
    assert [e[2:] for e in events] == [("METER", "FAULT")], events
    assert driver.relays() == "01"
    read = run.request("READ")
    assert "METER=FAULT" in read and "WHIN=3.000" in read and "RELAYS=01" in read, read
    refused = run.request("RELAY", 0, 1)
    assert refused[2:4] == ("ERR", "3"), refused
    run.request("HB")
    run.note("plugged back")
    run.meter(5000)
    driver.plug_meter()
    events = run.advance(400)
    assert [e[2:] for e in events] == [("METER", "OK")], events
    run.request("RELAY", 0, 1)
    assert "BUDGET=6.000,-" in run.request("READ")
    return run.transcript


def meter_dead_from_boot(driver: Driver) -> list[tuple[str, ...]]:
    """A meter that never answered: no values ever, METER=FAULT, budgeted relays refused."""
    run = start(driver, BoardSpec(meter_plugged=False, report_ms=5000))
    run.request("HELLO")
    run.advance(500)
    read = run.request("READ")
    assert "METER=FAULT" in read and not any(a.startswith("WHIN=") for a in read), read
    run.request("BUDGET", 0, "5")
    refused = run.request("RELAY", 0, 1)
    assert refused[2:4] == ("ERR", "3"), refused
    return run.transcript


def counter_wrap(driver: Driver) -> list[tuple[str, ...]]:
    """The failsafe and uptime across the millisecond counter's wrap (it starts 2 s short)."""
    return failsafe(driver, BoardSpec(relays=2, report_ms=60000, millis_start=2**32 - 2000))


def config(driver: Driver) -> list[tuple[str, ...]]:
    """CONFIG names the board (from the next HELLO) and its meter address."""
    run = start(driver, BoardSpec())
    run.request("HELLO")
    run.advance(300)  # the meter answered: the replies below do not race its first answer
    run.request("CONFIG", "sc-renamed", 17)
    run.request("CONFIG", "x" * 33, 17)
    run.request("CONFIG", "ok", 248)
    run.request("CONFIG", "ok", 0)
    again = run.request("HELLO")
    assert again[4:6] == ("2", "sc-renamed"), again
    return run.transcript


SCENARIOS: dict[str, Callable[[Driver], list[tuple[str, ...]]]] = {
    f.__name__: f for f in (hello_and_read, relay, budget_exhaustion, failsafe, opened_in_flight,
                            meter_unplugged, meter_dead_from_boot, counter_wrap, config)
}


def transcript(driver: Driver, name: str) -> list[tuple[str, ...]]:
    """Run one scenario on a driver, closing it even when the scenario fails."""
    try:
        return SCENARIOS[name](driver)
    finally:
        driver.close()


def assert_same(expected: list[tuple[str, ...]], got: list[tuple[str, ...]], who: str) -> None:
    """Two transcripts equal line by line (the reference driver's is expected)."""
    for n, (want, have) in enumerate(zip(expected, got, strict=False)):
        assert have == want, f"line {n}: {who} {have} != emulator {want}"
    assert len(got) == len(expected)
