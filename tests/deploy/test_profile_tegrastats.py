"""tegrastats parser on recorded real lines of every rail format (sources cited in each fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgemtl.deploy.profile.tegrastats import parse_line
from tests.helpers.cli import REPO

FIXTURES = REPO / "tests" / "fixtures" / "tegrastats"


def lines(name: str) -> list[str]:
    text = (FIXTURES / name).read_text()
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def test_every_fixture_cites_a_source() -> None:
    for path in FIXTURES.glob("*.txt"):
        assert "https://" in path.read_text().split("\nRAM", 1)[0], path.name


def test_orin_nano_nx_vdd_in() -> None:
    (line,) = lines("orin_nano_nx.txt")
    s = parse_line(line)
    assert s is not None
    assert s.rails == {
        "VDD_IN": (5299.0, 5299.0),
        "VDD_CPU_GPU_CV": (773.0, 773.0),
        "VDD_SOC": (1424.0, 1424.0),
    }
    assert s.board_mw == 5299.0 and s.source == "VDD_IN"


def test_agx_orin_rails_summed() -> None:
    first, second = (parse_line(x) for x in lines("agx_orin.txt"))
    assert first is not None and second is not None
    assert set(first.rails) == {
        "VDD_GPU_SOC",
        "VDD_CPU_CV",
        "VIN_SYS_5V0",
    }  # NVENC/APE/RAM not taken
    assert first.board_mw == 3205 + 4405 + 4767
    assert second.board_mw == 4940 + 988 + 4442
    assert first.source.startswith("sum of ")


def test_older_boards_without_units() -> None:
    nano, tx1, tx2, xnx, agx, nano_load = (parse_line(x) for x in lines("older_boards.txt"))
    assert nano is not None and nano.source == "POM_5V_IN" and nano.board_mw == 1022
    assert set(nano.rails) == {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}  # no RAM/SWAP/IRAM
    assert tx1 is not None and tx1.rails["VDD_IN"] == (2532.0, 2698.0) and tx1.board_mw == 2532
    assert tx2 is not None and tx2.board_mw == 3056 and "VDD_4V0_WIFI" in tx2.rails
    assert xnx is not None and xnx.board_mw == 4067
    assert agx is not None and agx.board_mw == 0 + 311 + 932 + 0 + 621 + 1482
    assert nano_load is not None and nano_load.rails["POM_5V_IN"] == (4520.0, 4680.0)
    assert "NVENC" not in nano_load.rails  # "NVENC 716" is a clock, not a rail


def test_instant_only_and_jetpack7_three_figures() -> None:
    s = parse_line("GR3D_FREQ 5% VDD_GPU_SOC 3588mW/3588mW/3600mW VDD_CPU_CV 797mW/797mW/800mW")
    assert s is not None and s.rails["VDD_GPU_SOC"] == (3588.0, 3588.0) and s.board_mw == 3588 + 797
    s = parse_line(
        "CPU [0%@1890] VDD_GPU 5517mW VDD_CPU_SOC_MSS 7484mW VIN_SYS_5V0 6309mW VIN 28548mW"
    )
    assert s is not None and s.source == "VIN" and s.board_mw == 28548


@pytest.mark.parametrize(
    "line",
    [
        "",
        "RAM 534/3964MB (lfb 98x4MB) SWAP 5/1982MB CPU [16%@204] APE 25",
        "09-01-2025 10:55:25 RAM 1313/30697MB GR3D_FREQ 0%",
    ],
)
def test_lines_without_power(line: str) -> None:
    assert parse_line(line) is None


def test_energy_per_image_hand_worked() -> None:
    from edgemtl.deploy.profile.power import summarize

    # mean (6 + 8 + 10) / 3 = 8 W; idle 5 W; 20 ms per batch of 4:
    # energy 8 W x 20 ms / 4 = 40 mJ/img; dynamic (8 - 5) x 20 / 4 = 15 mJ/img; peak 10 W.
    s = summarize([6.0, 8.0, 10.0], [5.0, 5.0], latency_ms=20.0, batch=4, source="tegrastats")
    assert s.measured and s.mean_w == 8.0 and s.peak_w == 10.0 and s.idle_w == 5.0
    assert s.mj_per_image == pytest.approx(40.0) and s.dynamic_mj_per_image == pytest.approx(15.0)
    empty = summarize([], [5.0], 20.0, 4, "tegrastats")
    assert not empty.measured and "no power sample" in empty.reason


def test_sampler_on_a_recorded_stream(tmp_path: Path) -> None:
    """The real TegrastatsSampler reading a stand-in binary that replays recorded lines."""
    import os
    import time

    from edgemtl.deploy.profile.power import TegrastatsSampler

    script = tmp_path / "tegrastats"
    replay = "\n".join(f"echo '{ln}'; sleep 0.02" for ln in lines("orin_nano_nx.txt") * 5)
    script.write_text(f"#!/bin/sh\n{replay}\nsleep 5\n")
    os.chmod(script, 0o755)
    sampler = TegrastatsSampler(interval_ms=20, binary=str(script))
    t0 = time.perf_counter_ns()
    sampler.start()
    deadline = time.time() + 5
    while len(sampler.readings) < 5 and time.time() < deadline:
        time.sleep(0.02)
    sampler.stop()
    assert [r.watts for r in sampler.readings][:5] == [5.299] * 5
    assert sampler.facts["rail"] == "VDD_IN"
    assert len(sampler.between(t0, time.perf_counter_ns())) >= 5


def test_modes_unknown_without_tools() -> None:
    import shutil

    from edgemtl.deploy.profile.power import jetson_modes, open_sampler

    if shutil.which("nvpmodel") is None:
        assert jetson_modes() == {"nvpmodel": "unknown", "jetson_clocks": "unknown"}
    if shutil.which("tegrastats") is None:
        sampler, reason = open_sampler("cpu")
        assert sampler is None and "not a Jetson" in reason


def test_thor_negative_gpu_rail_is_kept() -> None:
    """JetPack 7 on Thor: an idle VDD_GPU below zero is a reading, not noise to drop."""
    idle, load = (parse_line(x) for x in lines("thor_jp7_negative.txt"))
    assert idle is not None and load is not None
    assert idle.rails["VDD_GPU"] == (-392.0, -392.0)
    assert set(idle.rails) == {"VDD_GPU", "VDD_CPU_SOC_MSS", "VIN_SYS_5V0", "VIN"}
    assert idle.source == "VIN" and idle.board_mw == 15004 and idle.terms == ("VIN",)
    assert load.rails["VDD_GPU"] == (18210.0, 4120.0) and load.board_mw == 33650


def test_sum_of_rails_keeps_its_terms_line_to_line() -> None:
    """AGX Orin has no board-input rail: the sum adds the same rails on every line, a negative
    idle reading included; a line without one of them is left out, never summed differently."""
    from edgemtl.deploy.profile.tegrastats import board_power

    first, negative, partial = (parse_line(x) for x in lines("agx_orin_jp5_nc_rails.txt"))
    assert first is not None and negative is not None and partial is not None
    assert set(first.rails) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "NC", "VDDQ_VDD2_1V8AO"}
    assert first.board_mw == 2399 + 400 + 4032 + 0 + 301  # -256C temperatures are not rails
    assert negative.rails["VDD_GPU_SOC"] == (-120.0, 1139.0)
    assert negative.terms == first.terms
    source, values = board_power([first, negative, partial])
    assert source == first.source and source.startswith("sum of ")
    assert values == [7132.0, -120 + 380 + 4010 + 0 + 298]  # the partial line is left out


def test_sampler_keeps_the_first_lines_terms(tmp_path: Path) -> None:
    """The real TegrastatsSampler on a replayed stream whose last line lacks rails."""
    import os
    import time

    from edgemtl.deploy.profile.power import TegrastatsSampler

    script = tmp_path / "tegrastats"
    replay = "\n".join(f"echo '{ln}'; sleep 0.02" for ln in lines("agx_orin_jp5_nc_rails.txt"))
    script.write_text(f"#!/bin/sh\n{replay}\nsleep 5\n")
    os.chmod(script, 0o755)
    sampler = TegrastatsSampler(interval_ms=20, binary=str(script))
    sampler.start()
    deadline = time.time() + 5
    while sampler.facts.get("lines_skipped", 0) < 1 and time.time() < deadline:
        time.sleep(0.02)
    sampler.stop()
    assert [r.watts for r in sampler.readings] == [7.132, (-120 + 380 + 4010 + 298) / 1000]
    assert sampler.facts["lines_skipped"] == 1
