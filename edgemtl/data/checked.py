"""Training reads its data through the per-sample checks of `edgemtl data check`.

Why: a dataset that `data check` rejects must not train silently (uint8 0-255
images, labels of a 40-class labelling in a 13-class recipe, NaN depth), and a
broken file must stop training with the line `data check` would print, naming
the file. `CheckedReader` wraps any split reader and runs `check_files` (the
.npy as stored: dtype, finiteness) and `check_decoded` (image shape and range,
each target's kind rules, class ids against the reader's classes) the first
time each sample is read in a process; later reads (epochs, augmentation) pass
through, so the cost is one extra look per sample. Warnings (e.g. non-unit
normals) are printed to stderr, the first `MAX_WARNINGS` of them. numpy only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from edgemtl.data.check import check_decoded, check_files
from edgemtl.data.sample import Sample

#: Warnings printed per reader (per process); the rest are counted only.
MAX_WARNINGS = 3


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class CheckedReader:
    """A split reader whose samples pass `data check`'s per-sample checks (module doc).

    Every other attribute (`class_names`, `units`, `encodings`, `files`, ...) is the
    wrapped reader's.
    """

    def __init__(
        self,
        reader: Any,
        tasks: Sequence[str],
        warn: Callable[[str], None] = _stderr,
    ) -> None:
        self.reader = reader
        self.tasks = list(tasks)
        self.warn = warn
        self.warnings = 0
        self._checked: set[int] = set()

    def __len__(self) -> int:
        return len(self.reader)

    def __getattr__(self, name: str) -> Any:
        if name == "reader":  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.reader, name)

    def __getitem__(self, index: int) -> Sample:
        if index < 0:  # readers index from the end; files are named by the positive index
            index += len(self.reader)
        first = index not in self._checked
        files = check_files(self.reader, index, self.tasks) if first else {}
        sample = self.reader[index]
        if first:
            names = tuple(getattr(self.reader, "class_names", ()) or ())
            for message in check_decoded(sample, files, names):
                self.warnings += 1
                if self.warnings <= MAX_WARNINGS:
                    self.warn(message)
                elif self.warnings == MAX_WARNINGS + 1:
                    self.warn("more data warnings follow; run `edgemtl data check` for all")
            self._checked.add(index)
        return sample
