"""The error every training problem caused by the user's input or files is reported as."""


class RunError(Exception):
    """A run cannot go on: bad settings, an unusable run directory or checkpoint, and so on.

    The message is one line naming the problem and what to do about it; the command line
    prints it without a traceback.
    """


class CheckpointError(RunError):
    """A checkpoint is missing, damaged, from another model, or could not be written."""
