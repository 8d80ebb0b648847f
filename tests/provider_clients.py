"""The provider clients (``openai``, ``replicate``, ``fal-client``) pointed at the fakes of
``fakes.providers`` on 127.0.0.1, as fixtures (``pytest_plugins`` of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes.providers import FakeProviders, running_fake_providers


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with running_fake_providers() as server:
        yield server


@pytest.fixture
def openai_client(fake: FakeProviders) -> Iterator[Any]:
    import openai

    client = openai.OpenAI(base_url=f"{fake.url}/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def replicate_client(fake: FakeProviders) -> Any:
    from replicate.client import Client

    client = Client(api_token="r8_test", base_url=fake.url)
    client.poll_interval = 0.01  # the fake answers at once; the default 0.5 s only slows the test
    return client


@pytest.fixture
def fal_client(fake: FakeProviders, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import fal_client
    import fal_client.client as fal_module

    # fal-client reads FAL_RUN_HOST / FAL_QUEUE_RUN_HOST once, at import, and always prefixes
    # https://; the fake serves plain HTTP on loopback, so the two URL prefixes it builds from
    # them are pointed at the fake instead.
    monkeypatch.setattr(fal_module, "RUN_URL_FORMAT", f"{fake.url}/")
    monkeypatch.setattr(fal_module, "QUEUE_URL_FORMAT", f"{fake.url}/queue/")
    client = fal_client.SyncClient(key="fal-test-key")
    yield client
    client._client.close()
