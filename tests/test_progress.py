"""The progress bar's time left starts from the run's own estimate (the header's number), then follows the pace."""
from __future__ import annotations

import io

from rich.console import Console

from ferbench.progress import RemainingColumn, RunProgress


def _remaining(bar: RunProgress) -> str:
    task = bar._bar.tasks[0]
    return RemainingColumn().render(task).plain


def test_time_left_starts_at_the_estimate_the_header_prints_then_follows_the_pace():
    console = Console(file=io.StringIO(), force_terminal=False)
    with RunProgress(console, 2, weights={"a": 600.0, "b": 1200.0}) as bar:
        first = _remaining(bar)
        assert first in ("0:30:00", "0:29:59")  # 1,800 estimated seconds, nothing done yet
        bar._bar.update(bar._overall, completed=900.0)  # half the estimated work done
        task = bar._bar.tasks[0]
        left = RemainingColumn().render(task).plain
        h, m, s = (int(x) for x in left.split(":"))
        assert h * 3600 + m * 60 + s <= 5  # done in a blink: the pace says the rest is quick, not 15 min


def test_without_an_estimate_time_left_is_unknown_until_progress():
    console = Console(file=io.StringIO(), force_terminal=False)
    with RunProgress(console, 3) as bar:
        assert _remaining(bar) == "-:--:--"
