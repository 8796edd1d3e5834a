"""A three-node RabbitMQ cluster (with TLS listeners) for the whole `make test-cluster` run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bridge.config import load_settings
from bridge.service import Service
from tests.support.polling import until

from .rabbit_nodes import Node, TLSFiles, rabbit_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Node], TLSFiles]]:
    with rabbit_cluster(tmp_path_factory.mktemp("rabbit-cluster")) as started:
        yield started


@pytest.fixture
def nodes(cluster: tuple[list[Node], TLSFiles]) -> list[Node]:
    return cluster[0]


@pytest.fixture
def tls(cluster: tuple[list[Node], TLSFiles]) -> TLSFiles:
    return cluster[1]


@pytest.fixture
def prefix() -> str:
    return f"cluster-{uuid.uuid4().hex[:8]}"  # the cluster is thrown away after the run: nothing to clean


@pytest.fixture
async def replicas(prefix: str) -> AsyncIterator[Any]:
    """Start bridges in-process against the cluster; all shut down after the test."""
    started: list[Service] = []

    async def start(instance_id: str, amqp_url: str, wait_ready: bool = True, **overrides: Any) -> Service:
        settings = load_settings(
            host="127.0.0.1",
            port=0,
            exchange_prefix=prefix,
            amqp_url=amqp_url,
            instance_id=instance_id,
            drain_timeout_s=1.0,
            **overrides,
        )
        service = Service(settings)
        await service.start()
        started.append(service)
        if wait_ready:
            await until(service.broker.ready, timeout=20, what=f"{instance_id} connected to the cluster")
        return service

    yield start
    for service in started:
        await service.shutdown()
