"""The one exception a user can cause, with a hint that says what to do."""


class CoiError(Exception):
    """A user-facing error: bad file, bad model path, server down.

    Args:
        message: What went wrong, in plain words.
        hint: What the user can do about it.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
