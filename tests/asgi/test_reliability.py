"""Nothing lost, nothing duplicated: a backend outage under load, and a server killed with SIGKILL.

The backend is the real local-files backend behind a switch that makes it fail on command
(``flaky_service``); the server is a real uvicorn on 127.0.0.1 (a thread, or a subprocess for the
kill test). Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import genstore
import httpx
import pytest
from genstore._recording.recorder import default_spool_dir

from asgi.flaky_service import Switch, ThreadServer, create_app, open_flaky_store
from asgi.service_process import ServiceProcess

ROUTE = "/api/generate/text-to-image"


def wait_until(what: str, condition: Any, timeout: float, interval: float = 0.1) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def prompts_in(root: Path | str) -> Counter[str | None]:
    with genstore.open_store(root) as store:
        return Counter(record.prompt for record in store.iter_operations())


@pytest.mark.slow
def test_backend_outage_for_the_middle_half_of_1000_requests_loses_nothing(
    tmp_path: Path,
) -> None:
    switch = Switch(tmp_path / "flags")
    store = open_flaky_store(tmp_path / "store", switch)
    total = 1000
    statuses: Counter[int] = Counter()
    try:
        with ThreadServer(create_app(store)) as server, httpx.Client(base_url=server.url) as client:
            deadline = time.monotonic() + 300
            for i in range(total):
                if i == total // 4:
                    switch.set("DOWN")
                elif i == 3 * total // 4:
                    switch.clear("DOWN")
                response = client.post(ROUTE, json={"prompt": f"req-{i}"})
                statuses[response.status_code] += 1
                assert time.monotonic() < deadline, "1000 requests took over 300 s"
            assert statuses == Counter({200: total})  # recording never failed a response

            def all_saved() -> bool:
                counters = store.recorder.counters
                return counters.recorded + counters.replayed == total and counters.pending == 0

            wait_until("1000 records saved", all_saved, timeout=120)
        counters = store.recorder.counters
        assert counters.spooled > 0, (
            "the outage never reached the recorder: the test proves nothing"
        )
        assert counters.replayed == counters.spooled
        assert counters.dropped == 0 and counters.rejected == 0
    finally:
        switch.clear("DOWN")
        store.close()
    prompts = prompts_in(tmp_path / "store")
    assert sum(prompts.values()) == total
    assert set(prompts) == {f"req-{i}" for i in range(total)}


class Service(ServiceProcess):
    """The flaky service (or the app ``factory`` names) on the store at ``root``, or at the
    ``GENSTORE_TEST_URL`` of ``extra_env``, with its switch's flags in ``flags``."""

    def __init__(
        self,
        root: Path,
        flags: Path,
        factory: str = "asgi.flaky_service:app_from_env",
        **extra_env: str,
    ) -> None:
        env = {**extra_env, "GENSTORE_TEST_ROOT": str(root), "GENSTORE_TEST_FLAGS": str(flags)}
        super().__init__(factory, env)

    def generate(self, prompt: str) -> None:
        assert self.client.post(ROUTE, json={"prompt": prompt}).status_code == 200


@pytest.mark.slow
def test_sigkill_with_records_spooled_then_again_mid_replay_loses_and_duplicates_nothing(
    tmp_path: Path, services: list[Service]
) -> None:
    root, flags = tmp_path / "store", tmp_path / "flags"
    switch = Switch(flags)
    total = 60

    # 1. The backend is down: every record goes to the spool. Then the process is killed.
    switch.set("DOWN")
    first = Service(root, flags)
    services.append(first)
    for i in range(total):
        first.generate(f"kill-{i}")
    wait_until(
        "every record spooled",
        lambda: (s := first.status())["spooled"] == total and s["pending"] == 0,
        timeout=60,
    )
    first.kill()

    # 2. Back up but slow: the restarted service replays with no request at all (its lifespan
    # startup starts the recorder); killed again in the middle of the replay.
    switch.clear("DOWN")
    switch.set("SLOW", "0.05")
    second = Service(root, flags)
    services.append(second)
    wait_until("some replays", lambda: second.status()["replayed"] >= 5, timeout=120)
    assert second.status()["spool_count"] > 0, "replay finished before the kill: nothing tested"
    second.kill()

    # 3. Healthy: the next start replays the rest, including what the killed replay had claimed,
    # still without any request.
    switch.clear("SLOW")
    third = Service(root, flags)
    services.append(third)
    expected = {f"kill-{i}" for i in range(total)}
    wait_until("every record replayed", lambda: set(prompts_in(root)) == expected, timeout=120)
    third.stop()

    prompts = prompts_in(root)
    assert set(prompts) == expected  # none lost
    assert max(prompts.values()) == 1, [p for p, n in prompts.items() if n > 1]  # none duplicated


async def _burst(port: int, prompts: list[str]) -> list[str]:
    """POST every prompt at once (50 connections); the prompts whose 200 answer arrived whole."""
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
    ) as client:

        async def one(prompt: str) -> str | None:
            response = await client.post(ROUTE, json={"prompt": prompt})
            return prompt if response.status_code == 200 else None

        answered = await asyncio.gather(*(one(p) for p in prompts))
    return [p for p in answered if p is not None]


@pytest.mark.slow
@pytest.mark.parametrize("write_ahead", [True, False], ids=["journal", "control: no journal"])
def test_sigkill_during_a_burst_loses_no_acknowledged_request(
    tmp_path: Path, services: list[Service], write_ahead: bool, backend_url: str
) -> None:
    flags = tmp_path / "flags"
    switch = Switch(flags)
    total = 250
    # Every blob call takes 50 ms: the burst is answered long before its records are saved, so
    # at the kill most of them exist only in the process (the hand-off and the recorder's queue)
    # and in its write-ahead journal.
    switch.set("SLOW", "0.05")
    env = {"GENSTORE_TEST_URL": backend_url} if "://" in backend_url else {}
    if not write_ahead:
        env["GENSTORE_TEST_WRITE_AHEAD"] = "0"
    first = Service(tmp_path / "store", flags, **env)
    services.append(first)
    acknowledged = asyncio.run(_burst(first.port, [f"burst-{i}" for i in range(total)]))
    assert len(acknowledged) == total
    status = first.status()
    durable = status["recorded"] + status["spooled"]
    assert durable < total // 2, f"{durable} records already saved: the kill would test nothing"
    print(f"{durable} of {total} acknowledged records saved or spooled at the kill")
    with genstore.open_store(backend_url) as opened:  # its recorder is never made here
        journal = default_spool_dir(opened.blobs) / "journal"
    written = list(journal.glob("*.wal"))
    first.kill()

    switch.clear("SLOW")
    second = Service(tmp_path / "store", flags, **env)
    services.append(second)
    wanted = set(acknowledged)
    if not write_ahead:  # the control: what the kill costs without the journal
        assert written == []
        wait_until("the restart to settle", lambda: second.status()["pending"] == 0, 60)
        second.stop()
        kept = set(prompts_in(backend_url))
        print(f"without the journal: {len(wanted - kept)} of {total} acknowledged records lost")
        assert len(kept) < len(wanted)  # records were lost: the kill hit what the journal keeps
        return
    (file,) = written  # one file for the one process, holding the rest
    wait_until(
        "every acknowledged record", lambda: wanted <= set(prompts_in(backend_url)), timeout=120
    )
    wait_until("the journal recovered", lambda: not file.exists(), timeout=60)
    second.stop()

    prompts = prompts_in(backend_url)
    assert set(prompts) == wanted  # none lost
    assert max(prompts.values()) == 1, [p for p, n in prompts.items() if n > 1]  # none duplicated


EXIT_SCRIPT = """
import asyncio, sys, time
import httpx
import genstore
from genstore_asgi import RecordingMiddleware
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def generate(request):
    await request.body()
    return JSONResponse({"success": True, "resultUrl": None})

def slow_extractor(body):
    time.sleep(0.5)  # runs on the handoff thread: the exchange is still queued at exit
    return None

store = genstore.open_store(sys.argv[1])
app = RecordingMiddleware(
    Starlette(routes=[Route("/gen", generate, methods=["POST"])]),
    store=store, routes={"/gen": "text_to_image"}, result_extractor=slow_extractor,
)

async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for i in range(3):
            assert (await client.post("/gen", json={"prompt": f"exit-{i}"})).status_code == 200

asyncio.run(main())
# No flush, no close: the interpreter exits with records still queued.
"""


def test_records_still_queued_at_a_normal_exit_are_saved(tmp_path: Path) -> None:
    root = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert prompts_in(root) == Counter({"exit-0": 1, "exit-1": 1, "exit-2": 1}), done.stderr
    with genstore.open_store(root) as opened:  # every entry settled: the journal file went too
        assert list((default_spool_dir(opened.blobs) / "journal").glob("*.wal")) == []


EXPECTED_STATUS = {"fail": 500, "job": 202}


async def _burst_of_kinds(port: int, prompts: list[str]) -> list[str]:
    """POST each prompt to the ``hostile_service`` route its prefix names; those answered whole.

    One connection per request: uvicorn closes a connection whose app raised (``/fail``), and a
    request already sent on it would fail for that.
    """
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        limits=limits,
        timeout=60,
        headers={"connection": "close"},
    ) as client:

        async def one(prompt: str) -> str | None:
            kind = prompt.split("-")[0]
            body = {"prompt": prompt, "pad": "x" * 5000} if kind == "big" else {"prompt": prompt}
            response = await client.post(f"/{kind}", json=body)
            return prompt if response.status_code == EXPECTED_STATUS.get(kind, 200) else None

        answered = await asyncio.gather(*(one(p) for p in prompts))
    return [p for p in answered if p is not None]


def _what_is_wrong(store: genstore.Store, record: genstore.OperationRecord) -> str | None:
    """What in ``record`` differs from what an unkilled ``hostile_service`` records."""
    from asgi.hostile_service import png_for

    prompt = str(record.prompt)
    kind = prompt.split("-")[0]
    results = [store.read_artifact(ref) for ref in record.results]
    if kind == "fail":
        return None if record.error == f"RuntimeError: boom {prompt}" else f"error {record.error}"
    if kind in ("png", "sse"):
        return None if results == [png_for(prompt)] else f"results {[len(r) for r in results]}"
    if kind == "job":
        return None if record.job_id == f"job-{prompt}" else f"job id {record.job_id}"
    if kind == "big":
        pad = (record.parameters or {}).get("pad") if isinstance(record.parameters, dict) else None
        return None if pad == "x" * 5000 else "parameters lost"
    return None


@pytest.mark.slow
def test_sigkill_after_a_burst_of_every_kind_of_answer_replays_each_record_whole(
    tmp_path: Path, services: list[Service]
) -> None:
    root, flags = tmp_path / "store", tmp_path / "flags"
    switch = Switch(flags)
    kinds = ("gen", "big", "png", "fail", "sse", "job")
    total = 10 * len(kinds)
    switch.set("SLOW", "0.05")  # most records are still in the process at the kill
    first = Service(root, flags, "asgi.hostile_service:app_from_env")
    services.append(first)
    acknowledged = asyncio.run(
        _burst_of_kinds(first.port, [f"{k}-{i}" for i in range(10) for k in kinds])
    )
    assert len(acknowledged) == total
    status = first.status()
    durable = status["recorded"] + status["spooled"]
    assert durable < total // 2, f"{durable} records already saved: the kill would test nothing"
    first.kill()

    switch.clear("SLOW")
    second = Service(root, flags, "asgi.hostile_service:app_from_env")
    services.append(second)
    wanted = set(acknowledged)
    wait_until(
        "a record for each request", lambda: sum(prompts_in(root).values()) >= total, timeout=120
    )
    second.stop()

    with genstore.open_store(root) as store:
        records = list(store.iter_operations())
        assert Counter(r.prompt for r in records) == Counter(wanted)  # none lost, none twice
        wrong = {r.prompt: _what_is_wrong(store, r) for r in records}
    assert {p: w for p, w in wrong.items() if w} == {}
