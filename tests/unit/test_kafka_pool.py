"""Unit tests of the shared Kafka admin clients: keys, locking, failures and reconnects."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, UnknownTopicOrPartitionError

from jobrunner.errors import ScalerError
from jobrunner.scalers.kafka_client import KafkaAdminPool, pool_key
from jobrunner.scalers.kafka_settings import KafkaAuth, KafkaSettings

SETTINGS = KafkaSettings(bootstrap_servers=("a:9092", "b:9092"), consumer_group="workers")
WAIT_SECONDS = 5


class FakeClient:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Factory:
    """Builds FakeClients, or raises what `fail_with` holds; counts every build."""

    def __init__(self) -> None:
        self.built: list[FakeClient] = []
        self.fail_with: Exception | None = None

    def __call__(self, settings: KafkaSettings) -> FakeClient:
        if self.fail_with is not None:
            raise self.fail_with
        client = FakeClient(settings)
        self.built.append(client)
        return client


def client_of(pool: KafkaAdminPool, settings: KafkaSettings) -> Any:
    return pool.call(settings, lambda client: client)


def with_auth(**values: Any) -> KafkaSettings:
    return replace(SETTINGS, auth=KafkaAuth(**values))


# --- keys -----------------------------------------------------------------------------------


def test_pool_shares_one_client() -> None:
    factory = Factory()
    pool = KafkaAdminPool(client_factory=factory)

    clients = {id(client_of(pool, replace(SETTINGS, topic=f"t{i}"))) for i in range(50)}

    assert len(clients) == 1
    assert len(factory.built) == 1
    assert pool.size() == 1


@pytest.mark.parametrize(
    ("other", "shared"),
    [
        pytest.param(replace(SETTINGS, bootstrap_servers=("b:9092", "a:9092")), True, id="order"),
        pytest.param(replace(SETTINGS, consumer_group="other"), True, id="other-group"),
        pytest.param(replace(SETTINGS, bootstrap_servers=("a:9092",)), False, id="other-servers"),
        pytest.param(with_auth(sasl="plaintext", username="u", password="p"), False, id="sasl"),
        pytest.param(with_auth(tls=True), False, id="tls"),
    ],
)
def test_pool_key(other: KafkaSettings, shared: bool) -> None:
    assert (pool_key(other) == pool_key(SETTINGS)) is shared


def test_pool_key_differs_by_password() -> None:
    first = with_auth(sasl="plaintext", username="u", password="p1")
    second = with_auth(sasl="plaintext", username="u", password="p2")

    assert pool_key(first) != pool_key(second)
    assert "p1" not in repr(pool_key(first))


# --- locking --------------------------------------------------------------------------------


def test_slow_build_blocks_only_its_key() -> None:
    release = threading.Event()
    started = threading.Event()
    slow = with_auth(tls=True)

    def factory(settings: KafkaSettings) -> FakeClient:
        if settings.auth.tls:
            started.set()
            release.wait(WAIT_SECONDS)
        return FakeClient(settings)

    pool = KafkaAdminPool(client_factory=factory)
    waiter = threading.Thread(target=client_of, args=(pool, slow))
    waiter.start()
    assert started.wait(WAIT_SECONDS)

    client = client_of(pool, SETTINGS)
    still_building = waiter.is_alive()
    release.set()
    waiter.join(WAIT_SECONDS)

    assert client.settings is SETTINGS
    assert still_building
    assert pool.size() == 2


def test_concurrent_callers_build_once() -> None:
    factory = Factory()
    pool = KafkaAdminPool(client_factory=factory)
    barrier = threading.Barrier(10)
    results: list[Any] = []
    refused: list[str] = []

    def call() -> None:
        barrier.wait(WAIT_SECONDS)
        try:
            results.append(client_of(pool, SETTINGS))
        except ScalerError as error:
            refused.append(str(error))

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)

    assert len(results) + len(refused) == 10
    assert len(factory.built) == 1
    assert all("still connecting" in message for message in refused)


def test_callers_do_not_wait_for_a_slow_build() -> None:
    release = threading.Event()
    started = threading.Event()

    def factory(settings: KafkaSettings) -> FakeClient:
        started.set()
        release.wait(WAIT_SECONDS)
        return FakeClient(settings)

    pool = KafkaAdminPool(client_factory=factory)
    builder = threading.Thread(target=client_of, args=(pool, SETTINGS))
    builder.start()
    assert started.wait(WAIT_SECONDS)
    with pytest.raises(ScalerError) as caught:
        client_of(pool, SETTINGS)
    release.set()
    builder.join(WAIT_SECONDS)

    assert "still connecting to Kafka" in str(caught.value)
    assert client_of(pool, SETTINGS) is not None


# --- failures -------------------------------------------------------------------------------


def test_failed_build_fails_fast_until_retry() -> None:
    factory = Factory()
    factory.fail_with = KafkaTimeoutError("Unable to bootstrap")
    clock = FakeClock()
    pool = KafkaAdminPool(client_factory=factory, clock=clock)

    with pytest.raises(ScalerError) as first:
        client_of(pool, SETTINGS)
    clock.now += SETTINGS.timeout_seconds - 1
    with pytest.raises(ScalerError) as caught:
        client_of(pool, SETTINGS)
    factory.fail_with = None
    clock.now += 1
    client = client_of(pool, SETTINGS)

    assert len(factory.built) == 1
    assert str(caught.value) == str(first.value), "a repeated failure has the same message"
    assert "a:9092,b:9092" in str(caught.value)
    assert "Unable to bootstrap" in str(caught.value)
    assert "retrying at most every" in str(caught.value)
    assert client is factory.built[0]


def test_failed_build_of_tls_context() -> None:
    factory = Factory()
    factory.fail_with = ScalerError("cannot load the TLS client certificate")
    pool = KafkaAdminPool(client_factory=factory, clock=FakeClock())

    with pytest.raises(ScalerError):
        client_of(pool, SETTINGS)

    assert pool.size() == 0


@pytest.mark.parametrize(
    "error", [KafkaConnectionError("socket disconnected"), KafkaTimeoutError("timed out")]
)
def test_connection_error_replaces_client(error: Exception) -> None:
    factory = Factory()
    pool = KafkaAdminPool(client_factory=factory)

    def fail(client: Any) -> None:
        raise error

    first = client_of(pool, SETTINGS)
    with pytest.raises(type(error)):
        pool.call(SETTINGS, fail)
    second = client_of(pool, SETTINGS)

    assert first.closed
    assert second is not first
    assert not second.closed


def test_broker_error_keeps_client() -> None:
    factory = Factory()
    pool = KafkaAdminPool(client_factory=factory)

    def fail(client: Any) -> None:
        raise UnknownTopicOrPartitionError("missing")

    first = client_of(pool, SETTINGS)
    with pytest.raises(UnknownTopicOrPartitionError):
        pool.call(SETTINGS, fail)

    assert client_of(pool, SETTINGS) is first
    assert not first.closed


def test_close_closes_every_client() -> None:
    factory = Factory()
    pool = KafkaAdminPool(client_factory=factory)
    client_of(pool, SETTINGS)
    client_of(pool, with_auth(tls=True))

    pool.close()

    assert [client.closed for client in factory.built] == [True, True]
    assert pool.size() == 0
