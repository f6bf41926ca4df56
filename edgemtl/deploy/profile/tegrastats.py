"""Parse `tegrastats` lines into power rails, for every Jetson generation's format.

Formats seen in the wild (fixtures in tests/fixtures/tegrastats/ cite sources):
- Orin Nano / NX (JetPack 5/6): `VDD_IN 5299mW/5299mW VDD_CPU_GPU_CV 773mW/773mW VDD_SOC ...`
- AGX Orin: `VDD_GPU_SOC 3205mW/3205mW VDD_CPU_CV ... VIN_SYS_5V0 ...` (no board-input rail)
- JetPack 7 adds a third figure: `VDD_GPU_SOC 3588mW/3588mW/3588mW`.
- Older boards (Nano, TX1/TX2, Xavier): no unit, `POM_5V_IN 1022/1022`, `VDD_IN 2532/2698`,
  AGX Xavier `GPU 0/0 CPU 311/311 SOC 932/932 CV 0/0 VDDRQ 621/621 SYS5V 1482/1482`.
- Thor (JetPack 7): `VDD_GPU -392mW/-392mW ... VIN 15004mW/15096mW`: an idle rail can
  read below zero (sensor offset), so figures are signed.
The first figure is the instantaneous power, the second tegrastats' running average.
Board power is the board-input rail where the board prints one, else the sum of rails;
`TegraSample.terms` names what was summed, and a stream keeps the terms of its first
line (`board_power`), so the total never changes meaning from one line to the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Board-input rails, most specific first: their value is the whole board's draw.
BOARD_INPUT_RAILS: tuple[str, ...] = ("VDD_IN", "POM_5V_IN", "VIN")

# NAME inst[mW]/avg[mW][/max[mW]], or NAME inst mW alone. The trailing look-ahead
# keeps "RAM 534/3964MB" and "IRAM 0/252kB" out; the name must start with a letter.
_RAIL = re.compile(
    r"(?<![\w@])([A-Z][A-Z0-9_]*) (-?\d+)(mW)?/(-?\d+)(?:mW)?(?:/(-?\d+)(?:mW)?)?(?![\w%@(])"
    r"|(?<![\w@])([A-Z][A-Z0-9_]*) (-?\d+)mW(?![\w/])"
)
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM", "LFB"})


@dataclass(frozen=True)
class TegraSample:
    """One tegrastats line: rails in mW (instantaneous, running average or None) and the board
    total."""

    rails: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    board_mw: float | None = None
    source: str = ""
    t_ns: int = 0
    #: The rails `board_mw` adds up: the board-input rail alone, or every rail.
    terms: tuple[str, ...] = ()

    def total(self, terms: tuple[str, ...]) -> float | None:
        """Instantaneous mW summed over `terms`; None when this line lacks one of them."""
        if not terms or any(name not in self.rails for name in terms):
            return None
        return sum(self.rails[name][0] for name in terms)


def parse_line(line: str, t_ns: int = 0) -> TegraSample | None:
    """The rails of one line, or None when it carries no power figure (e.g. tegrastats without
    root)."""
    rails: dict[str, tuple[float, float | None]] = {}
    for m in _RAIL.finditer(line):
        if m.group(1):
            name, inst, avg = m.group(1), float(m.group(2)), float(m.group(4))
            rails[name] = (inst, avg)
        else:
            rails[m.group(6)] = (float(m.group(7)), None)
    for name in _NOT_RAILS:
        rails.pop(name, None)
    if not rails:
        return None
    for name in BOARD_INPUT_RAILS:
        if name in rails:
            return TegraSample(rails, rails[name][0], name, t_ns, (name,))
    total = sum(v[0] for v in rails.values())
    return TegraSample(rails, total, "sum of " + "+".join(rails), t_ns, tuple(rails))


def board_power(samples: list[TegraSample]) -> tuple[str, list[float]]:
    """(what was measured, board mW of each line) for a stream of parsed lines.

    The first line fixes the terms (its board-input rail, or its set of rails);
    a later line lacking one of them is left out rather than summed differently.
    """
    if not samples:
        return "", []
    first = samples[0]
    values = [s.total(first.terms) for s in samples]
    return first.source, [v for v in values if v is not None]
