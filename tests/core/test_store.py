"""Store behaviour beyond the contract: configuration, sources, downloads, hooks, processes."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import genstore
import pytest
from genstore import ConfigurationError, InvalidInput, OperationRecord, PayloadTooLarge
from helpers import FileServer, png_bytes
from PIL import Image


def test_open_store_defaults_to_local_files_and_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENSTORE_URL", raising=False)
    monkeypatch.delenv("GENSTORE_CATALOG", raising=False)
    with genstore.open_store() as store:
        store.save_complete_operation(operation_type="t")
    assert (tmp_path / "genstore-data" / "catalog.sqlite3").is_file()


def test_open_store_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENSTORE_URL", f"file://{tmp_path}/env-store")
    monkeypatch.setenv("GENSTORE_CATALOG", "sidecar")
    with genstore.open_store() as store:
        assert type(store.catalog).__name__ == "SidecarCatalog"
        assert store.blobs.url == str(tmp_path / "env-store")


def test_unknown_scheme_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="nosuch"):
        genstore.open_store("nosuch://x")
    with pytest.raises(ConfigurationError, match="catalog"):
        genstore.open_store(tmp_path, catalog="nosuchcatalog")
    with pytest.raises(ConfigurationError, match="option"):
        genstore.open_store(tmp_path, bogus_option=1)


def test_every_kind_of_source_is_accepted(tmp_path: Path) -> None:
    data = png_bytes(7, 3)
    path = tmp_path / "in.png"
    path.write_bytes(data)
    pil = Image.new("RGB", (7, 3), "red")

    class Pipe(io.RawIOBase):
        """A non-seekable stream, like a socket."""

        def __init__(self) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            return self._inner.read(n)

    with genstore.open_store(tmp_path / "s") as store, open(path, "rb") as f:
        record = store.save_complete_operation(
            operation_type="image_edit_multiple",
            input_images=[data, bytearray(data), memoryview(data), str(path), path, f, Pipe(), pil],
            result=path,
        ).record
    assert len({ref.key for ref in record.inputs[:7]}) == 1
    assert all((ref.width, ref.height) == (7, 3) for ref in record.inputs)
    assert record.result is not None and record.result.sha256 == record.inputs[0].sha256


def test_bad_sources_are_typed_errors(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "s", max_input_bytes=100) as store:
        with pytest.raises(InvalidInput, match="does not exist"):
            store.save_complete_operation(operation_type="t", input_images=[tmp_path / "none"])
        with pytest.raises(PayloadTooLarge):
            store.save_complete_operation(operation_type="t", input_images=[b"x" * 101])
        with pytest.raises(InvalidInput):
            store.save_complete_operation(operation_type="t", input_images=b"not a list")
        with pytest.raises(InvalidInput):
            store.save_complete_operation(operation_type="t", result=b"x", result_url="http://x")
        assert store.history().items == []


def test_oversized_download_is_abandoned_and_noted(tmp_path: Path, file_server: FileServer) -> None:
    url = file_server.add("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * 5000)
    with genstore.open_store(tmp_path / "s", max_result_bytes=1000) as store:
        record = store.save_complete_operation(operation_type="t", result_url=url).record
        assert record.result is None
        assert record.result_error is not None and "limit" in record.result_error
        assert [b.key for b in store.blobs.list("operations/")] == [
            f"operations/{record.operation_id[:8]}/{record.operation_id}.json"
        ]


def test_non_http_result_urls_are_not_fetched(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "s") as store:
        record = store.save_complete_operation(
            operation_type="t", result_url="file:///etc/passwd"
        ).record
    assert record.result is None and record.result_error is not None
    assert "not http" in record.result_error


def test_async_save(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "s") as store:
        saved = asyncio.run(
            store.asave_complete_operation(operation_type="t", prompt="async", result=b"r")
        )
        assert store.get_operation(saved.operation_id).prompt == "async"


def test_module_level_save_uses_the_default_store(tmp_path: Path) -> None:
    store = genstore.open_store(tmp_path / "s")
    genstore.set_default_store(store)
    try:
        saved = genstore.save_complete_operation(operation_type="text_to_image", prompt="un chat")
        assert genstore.default_store() is store
        assert store.get_operation(saved.operation_id).prompt == "un chat"
    finally:
        genstore.set_default_store(None)
        store.close()


class _Redactor:
    @genstore.hookimpl
    def genstore_before_save(self, record: OperationRecord) -> OperationRecord:
        params = dict(record.parameters) if isinstance(record.parameters, dict) else {}
        params.pop("secret", None)
        return record.model_copy(update={"parameters": params})

    def __init__(self) -> None:
        self.saved: list[str] = []

    @genstore.hookimpl
    def genstore_after_save(self, record: OperationRecord) -> None:
        self.saved.append(record.operation_id)


def test_before_and_after_save_hooks(tmp_path: Path) -> None:
    plugin = _Redactor()
    genstore.register_plugin(plugin, name="test-redactor")
    try:
        with genstore.open_store(tmp_path / "s") as store:
            saved = store.save_complete_operation(
                operation_type="t", parameters={"secret": "x", "keep": 1}
            )
            assert store.get_operation(saved.operation_id).parameters == {"keep": 1}
        assert plugin.saved == [saved.operation_id]
    finally:
        from genstore._plugins import unregister_plugin

        unregister_plugin("test-redactor")


_WRITER = textwrap.dedent(
    """
    import sys, genstore
    store = genstore.open_store(sys.argv[1])
    for i in range(int(sys.argv[2])):
        store.save_complete_operation(operation_type="t", prompt=f"{sys.argv[3]}-{i}",
                                      result=b"r" * 2048, input_images=[bytes([i % 7]) * 512])
        print(i, flush=True)
    store.close()
    """
)


def test_several_processes_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    root = str(tmp_path / "shared")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, root, "40", f"p{n}"], stdout=subprocess.DEVNULL
        )
        for n in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    with genstore.open_store(root) as store:
        prompts = {r.prompt for r in store.iter_operations()}
        assert prompts == {f"p{n}-{i}" for n in range(4) for i in range(40)}
        assert store.verify(grace=timedelta(0)).ok


def test_sigkill_mid_save_leaves_nothing_half_visible(tmp_path: Path) -> None:
    root = str(tmp_path / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, root, "100000", "k"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    lines = 0
    while lines < 30 and time.monotonic() < deadline:
        if proc.stdout.readline():
            lines += 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    with genstore.open_store(root) as store:
        # Every visible record is whole: its result and inputs are all there.
        for record in store.iter_operations():
            assert record.result is not None
            assert len(store.read_artifact(record.result)) == 2048
            for ref in record.inputs:
                assert store.blobs.exists(ref.key)
        report = store.verify(grace=timedelta(0))
        assert not report.corrupt
        store.verify(fix=True, grace=timedelta(0))
        assert store.verify(grace=timedelta(0)).ok
        assert len(list(store.iter_operations())) >= 30


# -- the memory of inputs already stored -------------------------------------------------------


class _BlobCalls:
    """Counts ``exists`` calls and input writes on a store's backend (wrapping the real ones)."""

    def __init__(self, store: genstore.Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.exists = 0
        self.input_writes = 0
        blobs = store.blobs
        exists, write = blobs.exists, blobs.write

        def counting_exists(key: str) -> bool:
            self.exists += 1
            return exists(key)

        def counting_write(key: str, *args: object, **kwargs: object) -> int:
            if key.startswith("inputs/"):
                self.input_writes += 1
            return write(key, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(blobs, "exists", counting_exists)
        monkeypatch.setattr(blobs, "write", counting_write)


def _save_with_input(store: genstore.Store, data: bytes) -> str:
    saved = store.save_complete_operation(operation_type="t", input_images=[data])
    return saved.record.inputs[0].key


def test_an_input_saved_again_within_the_ttl_is_not_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png_bytes(5, 5, "blue")
    with genstore.open_store(tmp_path / "s") as store:
        calls = _BlobCalls(store, monkeypatch)
        key = _save_with_input(store, data)
        assert (calls.exists, calls.input_writes) == (1, 1)
        assert _save_with_input(store, data) == key
        assert _save_with_input(store, data) == key
        assert (calls.exists, calls.input_writes) == (1, 1)  # remembered: no exists, no write


def test_an_input_found_in_the_backend_is_remembered_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png_bytes(5, 5, "green")
    with genstore.open_store(tmp_path / "s") as first:
        _save_with_input(first, data)
    with genstore.open_store(tmp_path / "s") as store:
        calls = _BlobCalls(store, monkeypatch)
        _save_with_input(store, data)
        _save_with_input(store, data)
        assert (calls.exists, calls.input_writes) == (1, 0)


def test_an_input_deleted_by_cleanup_is_written_again_by_the_next_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png_bytes(6, 6, "red")
    with genstore.open_store(tmp_path / "s") as store:
        key = _save_with_input(store, data)
        report = store.cleanup(timedelta(0), grace=timedelta(0))
        assert report.inputs == 1 and not store.blobs.exists(key)
        calls = _BlobCalls(store, monkeypatch)
        assert _save_with_input(store, data) == key
        assert calls.input_writes == 1
        assert store.read_artifact(key) == data


def test_an_input_deleted_by_verify_fix_is_written_again_by_the_next_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png_bytes(6, 6, "yellow")
    with genstore.open_store(tmp_path / "s") as store:
        saved = store.save_complete_operation(operation_type="t", input_images=[data])
        key = saved.record.inputs[0].key
        store.delete_operation(saved.operation_id)  # the input stays, unreferenced
        store.verify(fix=True, grace=timedelta(0))
        assert not store.blobs.exists(key)
        calls = _BlobCalls(store, monkeypatch)
        assert _save_with_input(store, data) == key
        assert calls.input_writes == 1
        assert store.read_artifact(key) == data


def test_a_cleanup_in_another_store_is_noticed_once_the_ttl_has_passed(tmp_path: Path) -> None:
    data = png_bytes(7, 7, "purple")
    with (
        genstore.open_store(tmp_path / "s", known_inputs_ttl=0.05) as store,
        genstore.open_store(tmp_path / "s") as other,
    ):
        key = _save_with_input(store, data)
        other.cleanup(timedelta(0), grace=timedelta(0))
        assert not store.blobs.exists(key)
        time.sleep(0.1)  # past the TTL: the memory is not trusted any more
        assert _save_with_input(store, data) == key
        assert store.read_artifact(key) == data


def test_a_ttl_of_zero_checks_every_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = png_bytes(5, 5, "white")
    with genstore.open_store(tmp_path / "s", known_inputs_ttl=0) as store:
        calls = _BlobCalls(store, monkeypatch)
        for _ in range(3):
            _save_with_input(store, data)
        assert (calls.exists, calls.input_writes) == (3, 1)
