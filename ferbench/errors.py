"""Exceptions whose message is meant for the user, printed without a traceback by the CLI."""


class FerbenchError(Exception):
    """Base class: the message alone tells the user what went wrong and what to do."""


class DataError(FerbenchError):
    """A data source is missing, unreadable or malformed."""


class SuiteError(FerbenchError):
    """A suite file is invalid; ``problems`` lists every issue found, each with its location."""

    def __init__(self, path, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


class WeightsUnavailable(FerbenchError):
    """Pretrained weights were requested but cannot be found offline or downloaded."""


class ModelLoadError(FerbenchError):
    """A user-supplied model file or checkpoint cannot be used."""


class DiskFullError(FerbenchError):
    """The disk filled up while writing a file; the message names it."""


class StoreError(FerbenchError):
    """A results folder cannot be used as asked (unsafe name, held by another run, another configuration)."""


class ResultFormatError(FerbenchError):
    """A result file was written by another result format (an older ferbench) or is not a result at all."""
