"""litellm's HTTP client: a pool that keeps its connections, one per process, never the user's."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import httpx
import pytest

from llm_api_client._constants import MAX_CONNECTIONS_PER_PROCESS
from llm_api_client.providers import http_pool
from llm_api_client.providers.http_pool import (
    drop_inherited_clients,
    install_http_client,
    keep_alive_client,
)


@pytest.fixture(autouse=True)
def forget_installed(monkeypatch):
    monkeypatch.setattr(http_pool, "_installed", None)
    monkeypatch.setattr(http_pool, "_installed_in", None)


def pool_limits(client: httpx.Client) -> tuple[object, object]:
    pool = client._transport._pool  # type: ignore[attr-defined]
    return pool._max_connections, pool._max_keepalive_connections


def test_the_pool_never_closes_connections_for_being_surplus():
    with keep_alive_client() as client:
        # httpx's default would be (100, 20): idle connections past 20 closed after each request
        assert pool_limits(client) == (MAX_CONNECTIONS_PER_PROCESS, MAX_CONNECTIONS_PER_PROCESS)


def test_installed_once_per_process():
    litellm = SimpleNamespace(client_session=None)
    install_http_client(litellm)
    first = litellm.client_session
    install_http_client(litellm)

    assert isinstance(first, httpx.Client)
    assert litellm.client_session is first
    first.close()


def test_a_users_own_client_is_left_alone():
    own = httpx.Client()
    litellm = SimpleNamespace(client_session=own)
    install_http_client(litellm)

    assert litellm.client_session is own
    own.close()


def test_a_forked_child_makes_its_own(monkeypatch):
    litellm = SimpleNamespace(client_session=None)
    install_http_client(litellm)
    parents = litellm.client_session
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as if this were the child of a fork
    install_http_client(litellm)

    assert litellm.client_session is not parents
    parents.close()
    litellm.client_session.close()


def test_sdk_clients_cached_on_litellms_own_pools_are_dropped():
    flushed = []
    cache = SimpleNamespace(flush_cache=lambda: flushed.append(True))
    litellm = SimpleNamespace(client_session=None, in_memory_llm_clients_cache=cache)
    install_http_client(litellm)
    install_http_client(litellm)  # already ours: nothing more to drop

    assert flushed == [True]
    litellm.client_session.close()


def test_clients_inherited_from_a_parent_are_dropped_once_per_process(monkeypatch):
    flushed = []
    cache = SimpleNamespace(flush_cache=lambda: flushed.append(os.getpid()))
    monkeypatch.setitem(sys.modules, "litellm", SimpleNamespace(in_memory_llm_clients_cache=cache))
    monkeypatch.setattr(http_pool, "_forgotten_in", None)
    drop_inherited_clients()
    drop_inherited_clients()  # the same process: its clients are its own now
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as if this were the child of a fork
    drop_inherited_clients()

    assert flushed == [flushed[0], -1]
