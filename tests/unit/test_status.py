"""`loopml status`: when each family's drift check runs next, and a stack whose supervisor is gone."""

from __future__ import annotations

import pytest

from loopml.status import next_drift_check, render_status

HOUR = 3600.0
TICK = 1_000_000 * HOUR  # the drift_check DAG's next tick (on an hour boundary)


@pytest.mark.parametrize(
    ("last_check", "every_hours", "expected"),
    [
        (0.0, 24, TICK),  # never checked: the next tick
        (TICK - 30 * HOUR, 24, TICK),  # overdue: the next tick
        (TICK - 2 * HOUR, 24, TICK + 22 * HOUR),  # due in 22 h: the tick then
        (TICK - 2.5 * HOUR, 6, TICK + 4 * HOUR),  # due at +3.5 h: the first tick after
        (TICK - 23.99 * HOUR, 24, TICK),  # within the check's 60 s slack
    ],
)
def test_next_drift_check_is_the_first_tick_after_the_family_is_due(last_check, every_hours, expected):
    when = next_drift_check(
        last_check=last_check, every_hours=every_hours, enabled=True, next_tick=TICK, tick_every_s=HOUR, now=TICK - 60
    )
    assert when == expected


def test_no_next_drift_check_when_disabled_or_unscheduled():
    common = {"last_check": 0.0, "every_hours": 24, "tick_every_s": HOUR, "now": TICK}
    assert next_drift_check(enabled=False, next_tick=TICK, **common) is None
    assert next_drift_check(enabled=True, next_tick=None, **common) is None


def test_status_of_a_stack_whose_supervisor_is_gone(workspace):
    state = {
        "status": "running",
        "supervisor_pid": 2**22 + 12345,  # no such process
        "url": "http://127.0.0.1:9",
        "stack_log": "/x/stack.log",
        "components": {"scheduler": {"pid": 5, "started_at": 0, "restarts": 2, "health": "healthy", "last_exit": ""}},
    }
    text, code = render_status(workspace, state)
    assert code == 1 and "supervisor gone" in text and "scheduler" in text
    assert render_status(workspace, None)[1] == 3
