"""The one exception type that the CLI turns into a one-line message and exit 1.

Why a single type: every command shares the contract "bad input -> one line
naming the file/key and what was expected, no traceback". Code anywhere below
the CLI raises `UserError`; the CLI catches it once. Input echoed into a
message goes through `excerpt`, so a hostile file or `--set` value can never
turn the line into megabytes (docs/formats.md "Limits and checks").
"""

from __future__ import annotations

#: What to install for the commands that need PyTorch (train, eval, export from a checkpoint):
#: edgemtl is installed from a clone or a wheel (it is not on PyPI; docs/deploy.md "Install
#: profiles"), so errors quote this.
TRAIN_EXTRA = "pip install './edgemtl[train]' (a clone or wheel; docs/deploy.md)"
#: Longest excerpt of user input quoted in a message (characters of its repr).
EXCERPT_CHARS = 60
#: Hard cap on a message, whatever built it (characters).
MESSAGE_CHARS = 1000


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """`repr(value)` cut to about `limit` characters: `'abc...xyz' (12345 chars)`."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is still named
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    keep = max(limit - 10, 8)
    return f"{text[: keep // 2 + keep % 2]}...{text[-(keep // 2) :]} ({len(text)} chars)"


def short(text: object, limit: int = 40) -> str:
    """`str(text)` itself when it is short (a key name), else its `excerpt`."""
    value = str(text)
    return value if len(value) <= limit else excerpt(value, limit)


class UserError(Exception):
    """A problem the user can fix (bad file, key, flag). Message is one line."""

    def __init__(self, message: str) -> None:
        text = " ".join(str(message).split())
        if len(text) > MESSAGE_CHARS:
            text = text[: MESSAGE_CHARS - 3] + "..."
        super().__init__(text)
