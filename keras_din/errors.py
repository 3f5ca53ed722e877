"""The exception family of keras-din: every error it raises on purpose is a `KerasDinError`.

Each subclass also derives from the built-in it refines (`ValueError`, `RuntimeError`), so code
written against those keeps working. The command line prints a `KerasDinError` as one line
(exit code 2; 3 for a training run that diverged) and shows a traceback only with `--debug`.

Example:
>>> from keras_din.preset import PresetError
>>> issubclass(PresetError, KerasDinError) and issubclass(PresetError, ValueError)
True
"""


class KerasDinError(Exception):
    """Base class of the errors keras-din raises: a bad preset, checkpoint, image, config, training run or export."""


class ConfigError(KerasDinError, ValueError):
    """A configuration or option that cannot be used: a DIN size out of bounds, a bad training config,
    an unknown output format. The message names the option, its value and what is allowed."""


class ImageError(KerasDinError, ValueError):
    """An image file that cannot be read or written; the message names the file and the reason."""


class StorageError(KerasDinError, OSError):
    """A file that cannot be written where it was asked for (e.g. too little free disk space);
    the message names the folder, what is needed and what to do."""
