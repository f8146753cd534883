"""Errors raised by the library; the CLI turns each into a one-line message and exit code 1.

Every message says what went wrong *and* how to fix it, because it is all the user sees.
"""

from __future__ import annotations


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, docker stop, schedulers) arrived: cleaned up exactly like Ctrl-C."""


class InstructkitError(Exception):
    """A problem the user can fix; the message says how."""


class PluginError(InstructkitError):
    """A plugin could not be loaded or broke a hook contract."""


class SourceError(InstructkitError):
    """A raw dataset could not be found, read or understood."""


class TemplateError(InstructkitError):
    """A template or template pack is missing, malformed or failed to render."""


class RenderError(InstructkitError):
    """Rendering a dataset failed."""


class DatasetDirError(InstructkitError):
    """A directory is not a readable instructkit dataset."""


class OutputError(InstructkitError):
    """An output path cannot be created or written."""


class OutputExistsError(OutputError):
    """The output path exists and --overwrite was not given."""


class MixError(InstructkitError):
    """A mixture spec is invalid or cannot be met."""


class TrainerError(InstructkitError):
    """Training failed for a reason the user can act on."""


class UnknownTrainerError(TrainerError):
    """No installed trainer has the requested name."""


class OptionsError(InstructkitError):
    """Options for a trainer, metric or command are unknown or invalid."""


class ModelError(InstructkitError):
    """A model or adapter could not be found or loaded."""


class EvaluateError(InstructkitError):
    """Scoring or generation failed for a reason the user can act on."""
