"""User-facing errors: one line, what went wrong and how to fix it."""

from __future__ import annotations


class VbgError(Exception):
    """An error caused by user input or the environment.

    The CLI prints ``vbg: error: <what> (<fix>)`` and exits with code 2,
    without a traceback.
    """

    exit_code = 2

    def __init__(self, what: str, fix: str = "") -> None:
        self.what = what
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.what} ({self.fix})" if self.fix else self.what
        # one line, whatever a file name holds: control characters (a newline in a name) are escaped
        return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
