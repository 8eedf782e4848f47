"""The odometer: a board counter that restarts at zero is continued, on disk across restarts."""

from __future__ import annotations

import json
import threading

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.odometer import Odometer
from tests.common import wait_for


def test_a_counter_that_restarts_at_zero_is_continued(tmp_path):
    odometer = Odometer(tmp_path)
    assert odometer.apply("p1", 10.0, 2.0) == (10.0, 2.0)
    assert odometer.apply("p1", 12.5, 2.0) == (12.5, 2.0)
    # The board restarted: its counters count from zero again, the published ones go on.
    assert odometer.apply("p1", 0.0, 0.0) == (12.5, 2.0)
    assert odometer.apply("p1", 1.5, 0.25) == (14.0, 2.25)
    assert odometer.apply("c1", 3.0, 0.0) == (3.0, 0.0)  # boards are counted apart


def test_published_counters_survive_a_bridge_restart(tmp_path):
    first = Odometer(tmp_path)
    first.apply("p1", 40.0, 5.0)
    first.apply("p1", 0.0, 0.0)  # restart seen: the offset is on disk too
    assert first.apply("p1", 1.0, 1.0) == (41.0, 6.0)
    again = Odometer(tmp_path)  # the bridge process restarted
    assert again.apply("p1", 2.0, 1.0) == (42.0, 6.0)  # the same board counting on
    # … and restarting once more: what it counted since its restart is added on.
    assert again.apply("p1", 0.5, 0.0) == (42.5, 6.0)
    assert again.apply("p1", 1.5, 1.0) == (43.5, 7.0)
    assert json.loads((tmp_path / "p1.json").read_text())["wh_in"] == 43.5
    assert [p.name for p in tmp_path.iterdir()] == ["p1.json"]  # no temp file left behind


def test_odd_board_ids_are_stored_under_a_plain_file_name(tmp_path):
    Odometer(tmp_path).apply("../../etc/passwd", 1.0, 0.0)
    (stored,) = tmp_path.iterdir()
    assert stored.parent == tmp_path and stored.name.startswith("board-")
    assert Odometer(tmp_path).apply("../../etc/passwd", 0.0, 0.0) == (1.0, 0.0)


def test_concurrent_writers_never_share_a_temp_file(tmp_path):
    # Two odometers on one directory (two bridge processes by mistake) writing at once: every
    # write goes through its own temp file, so the file is always one whole JSON document.
    odometers = [Odometer(tmp_path) for _ in range(2)]
    for odometer in odometers:
        odometer.apply("p1", 0.0, 0.0)
    errors: list[BaseException] = []

    def write(odometer: Odometer) -> None:
        try:
            for wh in range(200):
                odometer.apply("p1", float(wh), 0.0)
        except BaseException as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=write, args=(o,)) for o in odometers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert json.loads((tmp_path / "p1.json").read_text())["wh_in"] == 199.0
    assert [p.name for p in tmp_path.iterdir()] == ["p1.json"]


def _grid() -> Microgrid:
    grid = Microgrid(speed=600.0, start_hour=11.0, seed=5, report_interval=0.1)
    grid.add_producer("p1", soc=0.5)
    grid.pause()  # emulated time moves only when the test advances it
    return grid


def test_a_restarted_board_and_bridge_publish_from_where_they_left_off(tmp_path):
    grid = _grid()
    grid.start()
    bridge = Bridge(heartbeat_s=0.2, odometer_dir=tmp_path / "odo")
    try:
        bridge.attach(grid.devices["p1"])
        grid.advance(1800)  # half an hour of noon sun
        before = wait_for(lambda: (r := bridge.read("p1")).wh_in > 10 and r, what="PV energy")
    finally:
        bridge.close()
        grid.stop()
    grid = _grid()  # a new emulator: the board's counter starts at zero again
    grid.start()
    bridge = Bridge(heartbeat_s=0.2, odometer_dir=tmp_path / "odo")
    try:
        bridge.attach(grid.devices["p1"])
        assert grid.reading("p1").wh_in < before.wh_in  # the board itself went back …
        after = bridge.read("p1")
        assert after.wh_in >= before.wh_in and after.wh_out >= before.wh_out  # … not the bridge
        grid.advance(600)
        later = wait_for(lambda: (r := bridge.read("p1")).wh_in > after.wh_in and r,
                         what="more PV energy")
        assert later.wh_in - before.wh_in <= grid.reading("p1").wh_in + 0.01
    finally:
        bridge.close()
        grid.stop()
