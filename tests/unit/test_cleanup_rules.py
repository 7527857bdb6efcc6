"""History limits and rollout: which Jobs a poll or a spec change deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobrunner.scaling.cleanup import JobSummary, history_to_delete, rollout_to_delete

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def finished(name: str, minute: int | None, *, failed: bool = False) -> JobSummary:
    when = None if minute is None else T0 + timedelta(minutes=minute)
    return JobSummary(
        name=name, generation=1, succeeded=not failed, failed=failed, finished_at=when
    )


@pytest.mark.parametrize(
    ("jobs", "successful", "failed", "expected"),
    [
        pytest.param([], 1, 1, [], id="no-jobs"),
        pytest.param(
            [
                finished("s1", 1),
                finished("s2", 2),
                finished("s3", 3),
                finished("f1", 1, failed=True),
                finished("f2", 2, failed=True),
                finished("f3", 3, failed=True),
            ],
            1,
            2,
            ["s1", "s2", "f1"],
            id="keda-vector-limits-1-and-2",
        ),
        pytest.param([finished("s1", 5), finished("s2", 1)], 1, 1, ["s2"], id="oldest-first"),
        pytest.param([finished("s1", 1), finished("s2", 2)], 0, 5, ["s1", "s2"], id="limit-zero"),
        pytest.param([finished("s1", 1), finished("s2", 2)], 2, 0, [], id="within-limit"),
        pytest.param(
            [finished("late", None), finished("early", 1)],
            1,
            1,
            ["early"],
            id="unknown-finish-time-goes-last",
        ),
        pytest.param(
            [finished(f"s{i:03d}", i) for i in range(101)],
            100,
            100,
            ["s000"],
            id="default-limit-101-jobs",
        ),
    ],
)
def test_history_to_delete(
    jobs: list[JobSummary], successful: int, failed: int, expected: list[str]
) -> None:
    assert history_to_delete(jobs, successful_limit=successful, failed_limit=failed) == expected


@pytest.mark.parametrize(
    ("generations", "gradual", "expected"),
    [
        pytest.param([1, 2, 2], False, ["job-0"], id="older-generation"),
        pytest.param([3, 2], False, ["job-0"], id="newer-generation-too"),
        pytest.param([None, 2], False, ["job-0"], id="missing-annotation"),
        pytest.param([1, 1], True, [], id="gradual-keeps-all"),
        pytest.param([2, 2], False, [], id="same-generation"),
    ],
)
def test_rollout_to_delete(
    generations: list[int | None], gradual: bool, expected: list[str]
) -> None:
    jobs = [JobSummary(name=f"job-{i}", generation=g) for i, g in enumerate(generations)]
    assert rollout_to_delete(jobs, generation=2, gradual=gradual) == expected


def test_rollout_deletes_finished_jobs() -> None:
    jobs = [finished("old-done", 1)]
    assert rollout_to_delete(jobs, generation=2, gradual=False) == ["old-done"]
