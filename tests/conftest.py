"""Shared fixtures: the real broker, a bridge served in-process on a free port, unique exchange prefixes."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bridge.config import Settings, load_settings
from bridge.service import Service
from tests.support.amqp import Agent, delete_topology
from tests.support.contract_tap import ContractTap
from tests.support.vectors import missing_reason

AMQP_URL = os.environ.get("BRIDGE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every broker fixture starts from `amqp_url`, so a test that reaches it needs the real RabbitMQ:
    mark it `broker` (`make unit` runs the rest). A test that reaches the broker another way marks
    itself (`pytestmark = pytest.mark.broker`)."""
    for item in items:
        if "amqp_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


@pytest.fixture
async def prefix(amqp_url: str) -> AsyncIterator[str]:
    """A fresh exchange prefix; every message the bridge publishes on it is validated (contract tap)."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    tap = await ContractTap(amqp_url, name).start()
    try:
        yield name
    finally:
        violations = await tap.stop()
        await delete_topology(amqp_url, name)
    assert violations == [], "messages the bridge published break the contract (schemas/):\n" + "\n".join(
        violations[:20]
    )


BridgeFactory = Callable[..., Awaitable[Service]]


@pytest.fixture
async def bridge_factory(prefix: str, amqp_url: str) -> AsyncIterator[BridgeFactory]:
    started: list[Service] = []

    async def make(**overrides: Any) -> Service:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "exchange_prefix": prefix,
            "amqp_url": amqp_url,
            "instance_id": f"test-{len(started)}",
            "drain_timeout_s": 1.0,
            # A loaded test machine can keep the broker from confirming session.started within the
            # production 1.5 s budget; tests about that budget set it themselves.
            "publish_timeout_s": 5.0,
        }
        values.update(overrides)
        settings: Settings = load_settings(**values)
        service = Service(settings)
        await service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        await service.shutdown()


@pytest.fixture
async def bridge(bridge_factory: BridgeFactory) -> Service:
    return await bridge_factory()


def ws_url(service: Service, path: str = "/") -> str:
    return f"ws://127.0.0.1:{service.server.port}{path}"


@pytest.fixture
async def agent(prefix: str, amqp_url: str) -> AsyncIterator[Agent]:
    a = Agent(amqp_url, prefix)
    await a.start()
    yield a
    await a.stop()
    assert a.contract_violations == [], "replies break the contract (schemas/):\n" + "\n".join(
        a.contract_violations[:20]
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """A run without the upstream vectors is not a full run: say so in one line nobody can miss."""
    reason = missing_reason()
    if reason is None:
        return
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and reason in str(report.longrepr[2])
    ]
    if skipped:
        terminalreporter.write_line(
            f"RTVBP CONFORMANCE NOT RUN: {len(skipped)} vector-driven tests skipped, so no upstream "
            f"vector case ran ({reason})",
            red=True,
            bold=True,
        )
