"""Wakeup: the call timer's sleep ends at its deadline or at the first set(), whichever comes first."""

from __future__ import annotations

import asyncio
import time

from bridge.server.wakeup import Wakeup


async def test_a_set_before_the_sleep_returns_at_once_and_is_consumed() -> None:
    wakeup = Wakeup()
    wakeup.set()
    started = time.monotonic()
    await asyncio.wait_for(wakeup.sleep_until(None), 1)  # would never return without the flag
    assert time.monotonic() - started < 0.05
    deadline = time.monotonic() + 0.05
    await wakeup.sleep_until(deadline)  # the flag was consumed: this one waits for its deadline
    assert time.monotonic() >= deadline


async def test_the_sleep_ends_at_its_deadline() -> None:
    wakeup = Wakeup()
    deadline = time.monotonic() + 0.08
    await asyncio.wait_for(wakeup.sleep_until(deadline), 2)
    assert 0 <= time.monotonic() - deadline < 0.05


async def test_a_past_deadline_returns_on_the_next_loop_turn() -> None:
    await asyncio.wait_for(Wakeup().sleep_until(time.monotonic() - 1), 1)


async def test_set_wakes_a_sleeper_early_and_leaves_no_flag_behind() -> None:
    wakeup = Wakeup()
    sleeper = asyncio.create_task(wakeup.sleep_until(time.monotonic() + 30))
    await asyncio.sleep(0)  # the sleeper is waiting
    started = time.monotonic()
    wakeup.set()
    await asyncio.wait_for(sleeper, 1)
    assert time.monotonic() - started < 0.05
    deadline = time.monotonic() + 0.05
    await wakeup.sleep_until(deadline)  # the set() was used up by the sleeper it woke
    assert time.monotonic() >= deadline


async def test_a_cancelled_sleep_leaves_the_wakeup_usable() -> None:
    wakeup = Wakeup()
    sleeper = asyncio.create_task(wakeup.sleep_until(None))
    await asyncio.sleep(0)
    sleeper.cancel()
    await asyncio.gather(sleeper, return_exceptions=True)
    assert sleeper.cancelled()
    wakeup.set()  # no waiter left: only the flag
    await asyncio.wait_for(wakeup.sleep_until(None), 1)
