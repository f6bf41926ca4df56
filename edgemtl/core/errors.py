"""The one exception type that the CLI turns into a one-line message and exit 1.

Why a single type: every command shares the contract "bad input -> one line
naming the file/key and what was expected, no traceback". Code anywhere below
the CLI raises `UserError`; the CLI catches it once.
"""


class UserError(Exception):
    """A problem the user can fix (bad file, key, flag). Message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
