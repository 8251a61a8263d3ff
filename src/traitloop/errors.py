"""Errors a user can fix. The CLI prints these as one clear message instead of a traceback."""


class UserError(Exception):
    """Something in the user's input (config, data file, model name, run folder) is wrong; says what and where."""
