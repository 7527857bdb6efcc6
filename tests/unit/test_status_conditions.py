"""ScaledJob conditions: KEDA's reasons, and transition times kept while a status holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobrunner.kube.status import (
    Condition,
    active_condition,
    merge_conditions,
    paused_condition,
    ready_condition,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("errors", "active", "triggers", "status", "reason"),
    [
        pytest.param([], True, 1, "True", "ScaledJobReady", id="healthy-active"),
        pytest.param([], False, 1, "True", "ScaledJobReady", id="healthy-idle"),
        pytest.param(["a"], True, 2, "Unknown", "PartialTriggerError", id="partial-active"),
        pytest.param(["a"], False, 2, "False", "TriggerError", id="partial-idle"),
        pytest.param(["a"], False, 1, "False", "TriggerError", id="only-trigger-failed"),
    ],
)
def test_ready_condition(
    errors: list[str], active: bool, triggers: int, status: str, reason: str
) -> None:
    condition = ready_condition(errors=errors, active=active, trigger_count=triggers)
    assert condition.status == status
    assert condition.reason == reason


def test_active_and_paused_reasons() -> None:
    assert active_condition(True).reason == "ScalerActive"
    assert active_condition(False).reason == "ScalerNotActive"
    assert paused_condition(True).reason == "ScaledJobPaused"
    assert paused_condition(True).message == "ScaledJob is paused"
    assert paused_condition(False).reason == "ScaledJobUnpaused"


def test_merge_keeps_transition_time_when_status_holds() -> None:
    first = merge_conditions([], [active_condition(True)], T0)
    later = merge_conditions(first, [active_condition(True)], T0 + timedelta(minutes=5))
    assert later[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_merge_sets_transition_time_on_change() -> None:
    first = merge_conditions([], [active_condition(True)], T0)
    later = merge_conditions(first, [active_condition(False)], T0 + timedelta(minutes=5))
    assert later[0]["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert later[0]["status"] == "False"


def test_merge_keeps_order_of_wanted_conditions() -> None:
    wanted = [Condition("Ready", "True", "ScaledJobReady"), active_condition(False)]
    assert [c["type"] for c in merge_conditions([], wanted, T0)] == ["Ready", "Active"]
