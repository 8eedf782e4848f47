"""What only the host build can show: CONFIG kept in its "EEPROM" across a reboot, a watchdog
kick per main-loop pass, and a UART that fills up losing frames visibly (TXLOST=), never
silently."""

from __future__ import annotations

import fcntl
from pathlib import Path

from .drivers import HostDriver
from .scenarios import BoardSpec, normalise, start


def test_config_survives_a_reboot_and_names_the_board_from_the_next_hello(
        firmware: Path, tmp_path: Path) -> None:
    eeprom = tmp_path / "eeprom"
    driver = HostDriver(firmware, "--eeprom", str(eeprom))
    try:
        run = start(driver, BoardSpec(board_id="old"))
        run.request("HELLO")
        assert run.request("CONFIG", "new-id", 42)[2:] == ("OK", "CONFIG", "new-id", "42")
        assert driver.state()["addr"] == "42"
        assert run.request("READ")[2] == "OK"  # this session goes on under its old name
    finally:
        driver.close()
    assert eeprom.read_text() == "new-id\n42\n"
    driver = HostDriver(firmware, "--eeprom", str(eeprom))
    try:
        run = start(driver, BoardSpec(board_id="old"))  # --id is only the blank chip's default
        assert run.transcript[-1][3:5] == ("2", "new-id")  # the boot banner
        assert run.request("HELLO")[4:6] == ("2", "new-id")
        assert driver.state()["addr"] == "42"
    finally:
        driver.close()


def test_a_config_that_cannot_be_saved_changes_nothing(firmware: Path, tmp_path: Path) -> None:
    driver = HostDriver(firmware, "--eeprom", str(tmp_path / "no-such-dir" / "eeprom"))
    try:
        run = start(driver, BoardSpec(board_id="kept"))
        run.request("HELLO")
        assert run.request("CONFIG", "other", 9)[2:4] == ("ERR", "7")
        assert driver.state()["id"] == "kept" and driver.state()["addr"] == "1"
    finally:
        driver.close()


def test_the_watchdog_is_kicked_every_pass(firmware: Path) -> None:
    driver = HostDriver(firmware)
    try:
        start(driver, BoardSpec())
        kicks = int(driver.state()["kicks"])
        driver.advance_ms(1000)
        assert int(driver.state()["kicks"]) - kicks >= 1000 // 50  # a pass per <= 50 ms
    finally:
        driver.close()


def test_a_full_uart_loses_frames_visibly(firmware: Path) -> None:
    """Nobody reads: the UART buffer (a 4 KiB pipe) fills, writes give up after their bound;
    then every line read is whole or ended, and readings count the loss in TXLOST=."""
    driver = HostDriver(firmware)
    try:
        run = start(driver, BoardSpec(report_ms=1))
        assert driver.proc is not None and driver.proc.stdout is not None
        fcntl.fcntl(driver.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
        run.request("HELLO")
        driver.advance_ms(100)  # 100 readings of ~75 bytes into 4 KiB, nobody reading
        lines = driver.pending_lines()
        entries = [normalise(line, run.session) for line in lines]
        broken = [e for e in entries if e[0] == "undecodable"]
        assert len(broken) <= 1 and len(entries) < 100, (len(entries), broken)
        reply = run.request("READ")
        lost = next(a for a in reply if a.startswith("TXLOST="))
        assert int(lost.split("=")[1]) >= 100 - len(entries) - 1, (lost, len(entries))
    finally:
        driver.close()
