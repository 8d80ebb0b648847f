"""The shared retry loop (``genstore_adapters._retry``) on a fake clock: backoff with jitter
inside the deadline, what is retried and what is not, and what is raised when retrying stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from genstore_adapters._retry import Attempts, RetryPolicy, retry_call, retry_call_async
from hypothesis import given
from hypothesis import strategies as st


class _FakeTime:
    """A clock that only moves when something sleeps or an attempt takes time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.attempts_at: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class _Flaky(Exception):
    pass


class _Lasting(Exception):
    pass


class _Translated(Exception):
    def __init__(self, attempts: Attempts) -> None:
        super().__init__(f"after {attempts.count}")
        self.attempts = attempts


def _outcomes(
    fake: _FakeTime, outcomes: list[BaseException | str], cost: float
) -> Callable[[], str]:
    it = iter(outcomes)

    def attempt() -> str:
        fake.attempts_at.append(fake.now)
        fake.now += cost
        outcome = next(it)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return attempt


def _translated(exc: Exception, attempts: Attempts) -> BaseException:
    return _Translated(attempts)


def _run(
    policy: RetryPolicy,
    outcomes: list[BaseException | str],
    fake: _FakeTime,
    *,
    cost: float = 0.05,
    translate: Callable[[Exception, Attempts], BaseException] = _translated,
    on_retry: Callable[[Exception, Attempts, float], None] | None = None,
) -> str:
    return retry_call(
        _outcomes(fake, outcomes, cost),
        policy=policy,
        is_transient=lambda e: isinstance(e, _Flaky),
        translate=translate,
        on_retry=on_retry,
        sleep=fake.sleep,
        clock=fake.clock,
    )


def test_transient_failures_are_retried_until_success() -> None:
    fake = _FakeTime()
    seen: list[tuple[int, float]] = []
    result = _run(
        RetryPolicy(deadline=5),
        [_Flaky(), _Flaky(), "ok"],
        fake,
        on_retry=lambda exc, attempts, delay: seen.append((attempts.count, delay)),
    )
    assert result == "ok"
    assert [count for count, _ in seen] == [1, 2]
    assert [delay for _, delay in seen] == fake.slept


def test_non_transient_errors_are_not_retried_and_the_translation_chains_them() -> None:
    fake = _FakeTime()
    original = _Lasting("refused")
    with pytest.raises(_Translated) as info:
        _run(RetryPolicy(deadline=5), [original, "never"], fake)
    assert fake.slept == [] and len(fake.attempts_at) == 1
    assert info.value.__cause__ is original
    attempts = info.value.attempts
    assert (attempts.count, attempts.exhausted) == (1, False)
    assert attempts.elapsed == pytest.approx(0.05)


def test_translate_may_reraise_the_original_unchanged() -> None:
    fake = _FakeTime()
    original = _Lasting("bug")
    with pytest.raises(_Lasting) as info:
        _run(RetryPolicy(deadline=5), [original], fake, translate=lambda exc, _: exc)
    assert info.value is original
    assert info.value.__cause__ is None


def test_the_deadline_ends_retries_with_the_last_error_chained() -> None:
    fake = _FakeTime()
    outcomes: list[BaseException | str] = [_Flaky(n) for n in range(10_000)]
    with pytest.raises(_Translated) as info:
        _run(RetryPolicy(deadline=2.0, base=0.1, cap=0.5), outcomes, fake, cost=0.0)
    assert info.value.attempts.exhausted
    assert info.value.attempts.count == len(fake.attempts_at) >= 3
    assert info.value.__cause__ is outcomes[info.value.attempts.count - 1]  # the last error
    assert fake.now == 2.0  # the last wait was cut to end exactly at the deadline


def test_keyboard_interrupt_is_not_caught() -> None:
    fake = _FakeTime()
    with pytest.raises(KeyboardInterrupt):
        _run(RetryPolicy(deadline=5), [KeyboardInterrupt()], fake)
    assert fake.slept == []


@given(
    deadline=st.floats(0, 5),
    base=st.floats(0.001, 2),
    cap=st.floats(0.001, 5),
    cost=st.floats(0, 0.5),
    rolls=st.lists(st.floats(0, 1), min_size=1, max_size=50),
)
def test_never_sleeps_past_the_deadline_nor_starts_an_attempt_after_it(
    deadline: float, base: float, cap: float, cost: float, rolls: list[float]
) -> None:
    policy = RetryPolicy(deadline=deadline, base=base, cap=cap)
    for attempt, roll in enumerate(rolls, start=1):
        delay = policy.backoff(attempt, rng=lambda: roll)  # noqa: B023 - used at once
        assert 0 <= delay <= min(cap, base * 2.0 ** min(attempt - 1, 32))
    fake = _FakeTime()
    with pytest.raises(_Translated) as info:
        _run(policy, [_Flaky()] * 100_000, fake, cost=cost)
    assert info.value.attempts.exhausted
    assert sum(fake.slept) <= deadline
    assert all(at <= deadline for at in fake.attempts_at)


def test_the_async_twin_follows_the_same_rules() -> None:
    fake = _FakeTime()
    outcomes: list[BaseException | str] = [_Flaky(), "ok"]
    results = iter(outcomes)

    async def attempt() -> str:
        fake.now += 0.05
        outcome = next(results)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def run(fn: Callable[[], Awaitable[str]], policy: RetryPolicy) -> str:
        return asyncio.run(
            retry_call_async(
                fn,
                policy=policy,
                is_transient=lambda e: isinstance(e, _Flaky),
                translate=_translated,
                sleep=fake.asleep,
                clock=fake.clock,
            )
        )

    assert run(attempt, RetryPolicy(deadline=5)) == "ok"
    assert len(fake.slept) == 1

    async def always_down() -> str:
        fake.now += 0.05
        raise _Flaky("down")

    fake = _FakeTime()
    with pytest.raises(_Translated) as info:
        run(always_down, RetryPolicy(deadline=1.0))
    assert info.value.attempts.exhausted and isinstance(info.value.__cause__, _Flaky)
    assert sum(fake.slept) <= 1.0

    async def refused() -> str:
        raise _Lasting("no")

    fake = _FakeTime()
    with pytest.raises(_Translated) as info:
        run(refused, RetryPolicy(deadline=1.0))
    assert not info.value.attempts.exhausted and fake.slept == []
