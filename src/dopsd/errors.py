"""The one exception type that the command line turns into a single readable line."""


class DopsdError(Exception):
    """A problem with the user's input (a file, a model, a config value), not a bug in dopsd.

    The CLI prints ``error: <message>`` and exits with status 2 instead of a traceback.
    """
