"""S3 fixtures (a pytest plugin, loaded by tests/conftest.py): moto's ThreadedMotoServer on
127.0.0.1, reset before each test, dummy AWS credentials, and a fresh bucket per test.

    def test_x(s3_url: str) -> None:          # s3://<fresh bucket>/store?endpoint_url=http://127.0.0.1:PORT
        store = genstore.open_store(s3_url)

``restartable_s3`` is a server of the test's own that can be stopped and started again on the same
port (moto keeps its data in the process, so what was stored before the stop is there after).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import need_server

__all__ = ["MotoS3"]

_CLEARED_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "GENSTORE_S3_ENDPOINT_URL",
)


class MotoS3:
    """A moto S3 server on 127.0.0.1 that can be stopped for real and started again."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: Any = None
        self._client: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Start serving (on the same port as before, after a stop)."""
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO through a handler of its own.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self.port = server.get_host_and_port()[1]
        self._server = server

    def stop(self) -> None:
        """Stop serving and close the listening socket, so that connections are refused (as
        for a stopped server) rather than left waiting in the kernel's backlog."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            server._server.server_close()

    def reset(self) -> None:
        """Forget every bucket and object (moto's state is process-wide)."""
        httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()

    def client(self) -> Any:
        """A boto3 S3 client for this server (for checks behind genstore's back)."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._client


def _moto_available() -> bool:
    try:
        import boto3  # noqa: F401
        from moto.server import ThreadedMotoServer  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3]:
    """One moto S3 server for the session."""
    need_server(_moto_available(), "moto[server] (ThreadedMotoServer)")
    server = MotoS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, and nothing from the developer's own AWS setup."""
    for name in _CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def s3_server(moto_server: MotoS3, aws_env: None) -> MotoS3:
    """The session's moto server, reset for this test."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def s3_client(s3_server: MotoS3) -> Any:
    """A boto3 client on the test's moto server."""
    return s3_server.client()


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A fresh, empty bucket."""
    name = f"genstore-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_url(s3_server: MotoS3, s3_bucket: str) -> str:
    """A store URL in a fresh bucket: ``s3://bucket/store?endpoint_url=...``."""
    return f"s3://{s3_bucket}/store?endpoint_url={s3_server.endpoint_url}"


@pytest.fixture
def restartable_s3(moto_server: MotoS3, aws_env: None) -> Iterator[MotoS3]:
    """A moto server of this test's own, to stop and restart (on the same port)."""
    moto_server.reset()
    server = MotoS3()
    server.start()
    yield server
    server.stop()
