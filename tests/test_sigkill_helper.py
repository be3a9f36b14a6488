"""conftest's sigkill_when: a crash test passes only when the kill came at the moment it names."""
import os
import sys
import time

import pytest
from conftest import sigkill_when

ENV = dict(os.environ)
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_ready_condition_that_never_holds_fails_instead_of_killing_at_the_deadline():
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="the moment to kill at never came within 0.5 s"):
        sigkill_when(SLEEPER, ENV, lambda: False, timeout=0.5)
    assert time.monotonic() - t0 < 30  # it fails at its deadline, not when the child ends


def test_a_run_that_ends_before_the_moment_fails():
    with pytest.raises(AssertionError, match="run ended before it could be killed"):
        sigkill_when([sys.executable, "-c", "pass"], ENV, lambda: False, timeout=60)


def test_the_child_is_killed_as_soon_as_the_moment_comes(tmp_path):
    flag = tmp_path / "ready"
    child = [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(flag)!r}).touch(); time.sleep(60)"]
    t0 = time.monotonic()
    sigkill_when(child, ENV, flag.exists, timeout=60)
    assert flag.exists() and time.monotonic() - t0 < 30  # killed, not waited for
