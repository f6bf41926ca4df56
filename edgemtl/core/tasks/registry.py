"""The task-kind registry: name -> `TaskKind`, the one place kinds are looked up.

Built-in kinds register when `edgemtl.core.tasks` is imported; a new kind is
one module defining a `TaskKind` subclass plus `register_kind(MyKind())`
(docs/datasets.md "Adding a new task kind"). Metric names are shared across
kinds (depth, keypoints and edges all report `abs_err`), so registration
refuses a kind whose metric contradicts another kind's direction or label.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgemtl.core.errors import UserError
from edgemtl.core.tasks.kind import MetricInfo, TaskKind

_KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind, replace: bool = False) -> TaskKind:
    """Add `kind` under `kind.name`; returns it. ValueError on a clash (name taken
    without `replace`, an output name used by another kind, a metric redefined)."""
    if not kind.name or not kind.raw_output or not kind.decoded_output:
        raise ValueError(f"{kind!r}: a task kind needs a name, raw_output and decoded_output")
    if kind.name in _KINDS and not replace:
        raise ValueError(f"task kind {kind.name!r} is already registered")
    for other in _KINDS.values():
        if other.name == kind.name:
            continue
        shared = {other.raw_output, other.decoded_output} & {kind.raw_output, kind.decoded_output}
        if shared:
            raise ValueError(
                f"task kind {kind.name!r}: output {min(shared)!r} belongs to {other.name!r}"
            )
        for mine in kind.metrics:
            theirs = next((m for m in other.metrics if m.name == mine.name), None)
            if theirs is not None and theirs != mine:
                raise ValueError(
                    f"task kind {kind.name!r}: metric {mine.name!r} differs from "
                    f"{other.name!r}'s ({theirs})"
                )
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (tests that register a temporary one); unknown names are ignored."""
    _KINDS.pop(name, None)


def get_kind(name: str) -> TaskKind:
    """The registered kind called `name`; UserError naming the known kinds otherwise."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        known = ", ".join(_KINDS)
        raise UserError(f"unknown task kind {name!r}; expected one of {known}") from None


def kinds() -> Iterator[TaskKind]:
    """Registered kinds, in registration order (built-ins first)."""
    return iter(tuple(_KINDS.values()))


def kind_names() -> tuple[str, ...]:
    return tuple(_KINDS)


def metric_info(name: str) -> MetricInfo | None:
    """Direction and table label of a metric name, from whichever kind reports it."""
    for kind in _KINDS.values():
        for metric in kind.metrics:
            if metric.name == name:
                return metric
    return None


def metric_label(name: str, spaced: bool = True) -> str:
    """Table label with its direction arrow, e.g. "mIoU % ↑" ("mIoU %↑" unspaced);
    a name no kind reports is shown as is, with "↑"."""
    info = metric_info(name)
    label, arrow = (info.label, info.arrow) if info else (name, "↑")
    return f"{label} {arrow}" if spaced else f"{label}{arrow}"
