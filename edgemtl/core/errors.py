"""The one exception type that the CLI turns into a one-line message and exit 1.

Why a single type: every command shares the contract "bad input -> one line
naming the file/key and what was expected, no traceback". Code anywhere below
the CLI raises `UserError`; the CLI catches it once.
"""

#: How to get PyTorch and the training side: edgemtl is installed from a clone or a wheel
#: (it is not on PyPI; docs/deploy.md "Install profiles"), so errors quote this.
TRAIN_INSTALL_HINT = "pip install './edgemtl[train]' (a clone or wheel; docs/deploy.md)"


class UserError(Exception):
    """A problem the user can fix (bad file, key, flag). Message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
