"""The one exception type that the CLI turns into a clean message and a non-zero exit."""


class UserError(Exception):
    """Bad input or configuration: the message names the file or key and the problem."""
