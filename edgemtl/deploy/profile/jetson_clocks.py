"""Whether `jetson_clocks` has locked the clocks, read from `jetson_clocks --show`.

What the output says, board by board (fixtures in tests/fixtures/jetson_clocks/
cite their sources):
- CPU lines `cpuN: Online=1 Governor=... MinFreq=a MaxFreq=b CurrentFreq=c ...`
  (TX1: `Gonvernor=` and no `Online`): locked when MinFreq == MaxFreq; an
  offline core (`Online=0`) does not count.
- `GPU MinFreq=a MaxFreq=b CurrentFreq=c`: locked when MinFreq == MaxFreq (the
  oldest script prints `FreqOverride=1` instead).
- `EMC MinFreq=a MaxFreq=b CurrentFreq=c FreqOverride=f`: the memory clock is
  pinned by the override flag, not by its range: MinFreq stays below MaxFreq
  after `sudo jetson_clocks`, so judging by MinFreq = MaxFreq on every line
  reported "off" on every locked board.
- Engine lines (`DLA0_CORE: ... MinFreq=0 ...`, `PVA0_VPS0`, ...) and `Fan`,
  `NV Power Mode` are not what `jetson_clocks` locks; they are ignored.
Torch-free, pure text.
"""

from __future__ import annotations

import re

_CPU = re.compile(r"^\s*cpu\d+\s*:", re.IGNORECASE)
_FIELD = re.compile(r"([A-Za-z]+)=(\S*)")


def _fields(line: str) -> dict[str, str]:
    return dict(_FIELD.findall(line))


def _pinned(fields: dict[str, str]) -> bool | None:
    """MinFreq == MaxFreq (None when the line lacks either)."""
    low, high = fields.get("MinFreq"), fields.get("MaxFreq")
    if low is None or high is None:
        return None
    return low == high


def clocks_state(show: str) -> str:
    """`jetson_clocks --show` text -> "on" (CPU, GPU and memory clocks locked), "off", or
    "unknown" when the text has none of the CPU / GPU / EMC lines (e.g. it needed root)."""
    verdicts: list[bool] = []
    for line in show.splitlines():
        stripped = line.strip()
        fields = _fields(stripped)
        if _CPU.match(stripped):
            if fields.get("Online") == "0":
                continue
            pinned = _pinned(fields)
        elif stripped.startswith("GPU ") and "MinFreq=" in stripped:
            pinned = _pinned(fields) or fields.get("FreqOverride") == "1"
        elif stripped.startswith("EMC ") and "MinFreq=" in stripped:
            override = fields.get("FreqOverride")
            pinned = override == "1" if override is not None else _pinned(fields)
        else:
            continue
        if pinned is not None:
            verdicts.append(pinned)
    if not verdicts:
        return "unknown"
    return "on" if all(verdicts) else "off"
