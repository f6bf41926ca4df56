"""`jetson_clocks --show` -> locked or not, on recorded outputs of several boards (sources cited in
each fixture of tests/fixtures/jetson_clocks/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgemtl.deploy.profile.jetson_clocks import clocks_state
from tests.helpers.cli import REPO

FIXTURES = REPO / "tests" / "fixtures" / "jetson_clocks"


def fixture(path: Path) -> tuple[dict[str, str], str]:
    """(header fields, the --show text) of one fixture file."""
    header: dict[str, str] = {}
    body = []
    for line in path.read_text().splitlines():
        if line.startswith("# ") and ":" in line and not line.startswith("#  "):
            key, _, value = line[2:].partition(":")
            header[key.strip()] = value.strip()
        elif not line.startswith("#"):
            body.append(line)
    return header, "\n".join(body)


FILES = sorted(FIXTURES.glob("*.txt"))


def test_fixtures_cover_boards_and_states() -> None:
    headers = [fixture(p)[0] for p in FILES]
    assert len({h["board"] for h in headers}) >= 4
    assert {h["state"] for h in headers} == {"on", "off"}
    for path in FILES:
        assert "https://" in path.read_text().split("\nSOC family", 1)[0], path.name


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_recorded_outputs(path: Path) -> None:
    header, show = fixture(path)
    assert clocks_state(show) == header["state"]


def test_the_old_rule_misread_every_locked_board() -> None:
    """MinFreq = MaxFreq on every line said "off" for each locked fixture (the EMC line, or
    the DLA/PVA lines, never have equal bounds)."""
    locked = [fixture(p) for p in FILES if fixture(p)[0]["state"] == "on"]
    assert len(locked) >= 4
    for header, show in locked:
        pinned = [ln for ln in show.splitlines() if "MinFreq=" in ln and "MaxFreq=" in ln]
        same = all(
            ln.split("MinFreq=")[1].split()[0] == ln.split("MaxFreq=")[1].split()[0]
            for ln in pinned
        )
        assert not same, header["board"]


@pytest.mark.parametrize(
    "text",
    ["", "Error: Run this script(/usr/bin/jetson_clocks) as a root user", "NV Power Mode: MAXN"],
)
def test_nothing_to_judge_is_unknown(text: str) -> None:
    assert clocks_state(text) == "unknown"


def test_a_partly_locked_board_is_off() -> None:
    _, show = fixture(FIXTURES / "nano_l4t32_locked.txt")
    assert clocks_state(show.replace("FreqOverride=1", "FreqOverride=0")) == "off"
    _, show = fixture(FIXTURES / "agx_orin_jp5_locked.txt")
    gpu_free = show.replace("GPU MinFreq=1300500000", "GPU MinFreq=306000000")
    assert clocks_state(gpu_free) == "off"
