"""Taskonomy split files: which buildings make up each split.

Why its own module: the file is outside text (a CSV the user or Taskonomy wrote),
read in one place with every problem a one-line UserError naming the file and
line, and its form is read from the file itself, never from the split asked
for (docs/datasets.md "Taskonomy"). Property-tested in tests/hostile/.
"""

from __future__ import annotations

from pathlib import Path

from edgemtl.core.errors import UserError, excerpt

#: The split file looked for in the dataset root when none is named.
DEFAULT_SPLIT_FILE = "splits.csv"


def _resolve(root: Path, name: str) -> Path:
    path = Path(name).expanduser()
    if path.is_absolute():
        return path
    return root / path if (root / path).exists() or not path.exists() else path


#: Cell values of Taskonomy's flag table (id,train,val,test with 0/1 rows).
_FLAGS = frozenset({"0", "1", "true", "false", "yes", "no"})
#: Largest split file read (bytes): a building list, even a full Taskonomy one, is far smaller.
MAX_SPLIT_BYTES = 4 * 1024 * 1024


def split_file_form(rows: list[list[str]]) -> str:
    """Which of the accepted forms `rows` (non-empty, cells stripped) is, from the file alone:
    "flags" (Taskonomy's `id,train,val,test` header over 0/1 rows), "pairs_header"
    (`building,split` header) or "pairs" (headerless `building,split` rows).

    Why from the file alone: a header guessed from the split asked for made a headerless
    file whose first row is `b1,train` lose that row for `train` only.
    """
    header = [cell.lower() for cell in rows[0]]
    body = rows[1:]
    if header[:2] == ["building", "split"] and len(header) == 2:
        return "pairs_header"
    names_in_header = len(header) >= 2 and not any(cell in _FLAGS for cell in header[1:])
    flag_rows = bool(body) and all(
        len(row) >= 2 and all(cell.lower() in _FLAGS for cell in row[1:]) for row in body
    )
    if names_in_header and (flag_rows or (len(header) >= 3 and not body)):
        return "flags"
    return "pairs"


def read_split_file(root: Path, split_file: str | None, split: str) -> tuple[Path, list[str]]:
    """Buildings of `split` from the split file.

    Accepted forms: a path containing `{split}` (e.g. `splits/{split}.txt`, one
    building per line); a CSV of `building,split` rows (with or without that
    header); or Taskonomy's own CSV with a header `id,train,val,test` and 0/1
    flags. The form is read from the file (`split_file_form`), never from the
    split asked for. Every problem is a one-line UserError naming the file.
    """
    if split_file is None:
        if not (root / DEFAULT_SPLIT_FILE).is_file():
            raise UserError(
                f"taskonomy {root}: no split file: set data.split_file (a CSV of building,split, "
                "or a path with {split} listing one building per line) or add "
                f"{DEFAULT_SPLIT_FILE}"
            )
        split_file = DEFAULT_SPLIT_FILE
    templated = "{split}" in split_file
    path = _resolve(root, split_file.replace("{split}", split))
    if not path.is_file():
        raise UserError(f"{path}: split file not found")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SPLIT_BYTES + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read split file ({exc.__class__.__name__})") from None
    if len(data) > MAX_SPLIT_BYTES:
        raise UserError(f"{path}: larger than {MAX_SPLIT_BYTES >> 20} MiB; not a split file")
    numbered = [
        (n, [cell.strip() for cell in line.split(",")])
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    rows = [row for _, row in numbered]
    if templated:
        return path, [row[0] for row in rows if row[0]]
    if not rows:
        raise UserError(f"{path}: split file is empty")
    form = split_file_form(rows)
    if form == "flags":
        header = [cell.lower() for cell in rows[0]]
        if split.lower() not in header[1:]:
            raise UserError(
                f"{path}: no column {excerpt(split)} (columns: {', '.join(rows[0][1:])})"
            )
        col = header.index(split.lower())
        return path, [
            row[0]
            for row in rows[1:]
            if len(row) > col and row[col].lower() in ("1", "true", "yes")
        ]
    body = numbered[1:] if form == "pairs_header" else numbered
    for line_no, row in body:
        if len(row) != 2 or not row[0]:
            raise UserError(
                f"{path}: line {line_no}: expected 'building,split' (or use a path with "
                "{split} listing one building per line)"
            )
    return path, [row[0] for _, row in body if row[1] == split]
