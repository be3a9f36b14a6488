"""Suites: loading a suite file (:mod:`.loading`) and expanding it into experiments (:mod:`.expansion`).

The file format itself is :mod:`ferbench.schema.suite`; nothing here trains or evaluates anything.
"""
from .expansion import Experiment, Overrides, expand, resolve_profile
from .loading import LoadedSuite, load_suite

__all__ = ["Experiment", "LoadedSuite", "Overrides", "expand", "load_suite", "resolve_profile"]
