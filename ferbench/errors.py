"""Exceptions whose message is meant for the user, printed without a traceback by the CLI."""
from __future__ import annotations

import difflib
from typing import Iterable


def unknown_name(what: str, name: object, known: Iterable[str]) -> str:
    """The one wording for a name ferbench does not know (a model, a suite key, a profile, a paper,
    a prompt template): the closest known names if any are close, else all of them."""
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=3)
    if close:
        return f"unknown {what} {name!r}. Did you mean {' or '.join(map(repr, close))}?"
    return f"unknown {what} {name!r}. Available: {', '.join(known) or '(none)'}"


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
