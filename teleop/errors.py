"""The toolkit's user-facing error type: the CLI prints its message on one line and exits non-zero."""


class ToolkitError(Exception):
    """A problem the user can fix; the message names it and the fix."""
