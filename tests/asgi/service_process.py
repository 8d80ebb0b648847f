"""A test app served by uvicorn in a subprocess on 127.0.0.1, to kill or stop (the ``services``
fixture of ``asgi/conftest.py`` makes sure none outlives its test).

``factory`` names the uvicorn factory (``asgi.flaky_service:app_from_env`` and its neighbours read
their store from ``$GENSTORE_TEST_*``); the subprocess inherits the test's environment, so the
spool and the journal go under the test's ``XDG_STATE_HOME`` (tests/conftest.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import free_port

from asgi.support import wait_for

HERE = Path(__file__).parent


class ServiceProcess:
    """uvicorn serving ``factory`` with ``env`` added; answers ``/_ping`` and ``/_status``."""

    def __init__(
        self,
        factory: str,
        env: dict[str, str],
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.port = free_port()
        full_env = {
            **os.environ,
            **env,
            "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "warning"]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=full_env, cwd=HERE.parent, preexec_fn=preexec_fn
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        if not wait_for(self._answers, timeout=60):
            pytest.fail("the service did not answer within 60 s")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the service exited with {self.process.returncode}")
        try:
            return self.client.get("/_ping").status_code == 200
        except httpx.TransportError:
            return False

    def status(self) -> dict[str, int]:
        """The recorder's counters and the spool's (``GET /_status``)."""
        data: dict[str, int] = self.client.get("/_status").json()
        return data

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no drain, no exit hook."""
        self.client.close()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM: lifespan shutdown, so the recorder drains."""
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)
