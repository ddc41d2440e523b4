"""The toolkit's user-facing error type: the CLI prints its message on one line and exits non-zero."""

EXIT_ERROR = 2  # a ToolkitError / DeviceError: bad input, missing device, unwritable output
EXIT_FAILED_CHECK = 1  # the command ran, but what it checked failed (replay diverged, unreadable files)


class ToolkitError(Exception):
    """A problem the user can fix; the message names it and the fix."""


def one_line(error: BaseException | str) -> str:
    """An error or warning message on one line, as the command lines print it."""
    return " ".join(str(error).split())
