"""The ``genstore`` command line: every command, its exit codes, and its one-line errors.

Commands run in-process through typer's ``CliRunner`` against real local stores (files + SQLite)
in a temporary folder; one test runs the installed ``genstore`` script in a subprocess to prove
the entry point. ``migrate`` runs against a stand-in ``genstore._migrate`` module (a fake, with
the signature the real one is being written to) only while the real module is not there yet.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import genstore
import pytest
from genstore import _keys
from genstore._cli._demo import DEMO_USER
from genstore._cli._parse import MAX_DURATION, format_duration, parse_duration, parse_time
from genstore._ids import new_operation_id
from genstore._plugins import register_plugin, unregister_plugin
from genstore._recording.recorder import default_spool_dir
from genstore._recording.spool import Spool
from genstore._save_request import SaveRequest
from genstore.cli import app
from genstore.exceptions import BackendUnavailable
from genstore.plugin import hookimpl
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_STORE, EXIT_NOT_FOUND = 0, 1, 2, 3, 4


@pytest.fixture(autouse=True)
def _no_store_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENSTORE_URL", raising=False)
    monkeypatch.delenv("GENSTORE_CATALOG", raising=False)
    monkeypatch.delenv("GENSTORE_DEBUG", raising=False)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return str(tmp_path / "store")


Run = Callable[..., Result]


@pytest.fixture
def run(url: str) -> Run:
    """``run("history", "--json")``: the CLI on the test's store; ``--url`` is given globally."""
    runner = CliRunner()

    def invoke(*args: str, store_url: str | None = url) -> Result:
        head = ["--url", store_url] if store_url is not None else []
        return runner.invoke(app, [*head, *args], catch_exceptions=False)

    return invoke


@dataclass
class Seeded:
    """What ``seeded`` put in the store, newest first."""

    ids: list[str] = field(default_factory=list)
    old_ids: list[str] = field(default_factory=list)


@pytest.fixture
def seeded(url: str) -> Seeded:
    """Five operations: three recent (two users, two types, one failed), two 60 days old."""
    now = datetime.now(UTC)
    out = Seeded()
    with genstore.open_store(url) as store:
        specs: list[dict[str, Any]] = [
            {
                "operation_type": "text_to_image",
                "user_id": "alice",
                "prompt": "old cat",
                "created_at": now - timedelta(days=61),
                "input_images": [b"shared input"],
            },
            {
                "operation_type": "text_to_image",
                "user_id": "bob",
                "prompt": "old dog",
                "created_at": now - timedelta(days=60),
            },
            {
                "operation_type": "text_to_image",
                "user_id": "alice",
                "prompt": "a [bold]cat[/]",
                "created_at": now - timedelta(hours=3),
                "result": b"\x89PNG fake",
            },
            {
                "operation_type": "image_edit_single",
                "user_id": "bob",
                "prompt": "edit",
                "created_at": now - timedelta(hours=2),
                "input_images": [b"an input"],
            },
            {
                "operation_type": "text_to_video",
                "user_id": "alice",
                "prompt": "video",
                "created_at": now - timedelta(hours=1),
                "error": "provider said no",
            },
        ]
        for spec in specs:
            saved = store.save_complete_operation(**spec)
            out.ids.insert(0, saved.operation_id)
    out.old_ids = out.ids[-2:]
    return out


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def one_error_line(result: Result) -> str:
    """The single ``error:`` line a failing command printed on stderr (and no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


# --- durations and times ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 10M ", timedelta(minutes=10)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "30", "d", "-5d", "1.5h", "5 days", "٣d", "1d 2h", "9" * 30 + "d"]
)
def test_bad_durations_are_refused_with_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=int(MAX_DURATION.total_seconds())))
def test_formatted_durations_parse_back(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from("wdhmsWDHMS")), min_size=1, max_size=5
    )
)
def test_a_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    size = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = timedelta(seconds=sum(n * size[u.lower()] for n, u in parts))
    if expected > MAX_DURATION:
        with pytest.raises(ValueError, match="longer than"):
            parse_duration(text)
    else:
        assert parse_duration(text) == expected


@given(st.text(max_size=30))
def test_duration_parsing_raises_nothing_but_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert timedelta(0) <= value <= MAX_DURATION


@given(st.datetimes(min_value=datetime(1900, 1, 1), timezones=st.sampled_from([UTC, None])))
def test_iso_times_parse_back_as_utc(value: datetime) -> None:
    expected = value.replace(tzinfo=UTC)
    assert parse_time(value.isoformat()) == expected
    assert parse_time(f"  {value.isoformat()} ") == expected


def test_times_are_iso_or_a_duration_ago() -> None:
    now = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
    assert parse_time("7d", now=now) == now - timedelta(days=7)
    assert parse_time("now", now=now) == now
    assert parse_time("2026-05-01", now=now) == datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_time("2026-05-01T14:00+02:00", now=now) == datetime(2026, 5, 1, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO"):
        parse_time("last tuesday", now=now)


# --- errors and exit codes -------------------------------------------------------------------


def test_an_unknown_url_scheme_is_one_line_and_exit_3(run: Run) -> None:
    result = run("history", store_url="bogus://somewhere")
    assert result.exit_code == EXIT_STORE
    assert "bogus" in one_error_line(result)


def test_show_of_a_missing_id_is_one_line_and_exit_4(run: Run, seeded: Seeded) -> None:
    _, missing = new_operation_id()
    result = run("show", missing)
    assert result.exit_code == EXIT_NOT_FOUND
    assert missing in one_error_line(result)


def test_usage_errors_keep_exit_2(run: Run) -> None:
    assert run("history", "--no-such-option").exit_code == EXIT_USAGE
    result = run("cleanup", "--older-than", "thirty days")
    assert result.exit_code == EXIT_USAGE
    assert "not a duration" in result.stderr
    assert run("history", "--status", "maybe").exit_code == EXIT_USAGE
    assert run("history", "--limit", "0").exit_code == EXIT_USAGE


def test_invalid_input_from_the_store_is_a_usage_error(run: Run, seeded: Seeded) -> None:
    result = run("history", "--cursor", "not-a-cursor")
    assert result.exit_code == EXIT_USAGE
    assert "cursor" in one_error_line(result)


def test_an_unavailable_backend_is_exit_3(
    run: Run, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise BackendUnavailable("catalog did not answer\nwithin 10 s")

    monkeypatch.setattr(genstore.Store, "history", down)
    result = run("history")
    assert result.exit_code == EXIT_STORE
    assert one_error_line(result) == "error: catalog did not answer within 10 s"


def test_an_unexpected_error_is_one_line_exit_1_unless_debugging(
    run: Run, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(genstore.Store, "stats", broken)
    result = run("stats")
    assert result.exit_code == EXIT_FAILURE
    assert "unexpected RuntimeError: boom" in one_error_line(result)
    monkeypatch.setenv("GENSTORE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        run("stats")


def test_url_is_read_from_the_environment_and_accepted_after_the_command(
    run: Run, url: str, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENSTORE_URL", url)
    from_env = run("history", "--json", store_url=None)
    assert [r["operation_id"] for r in json_lines(from_env.stdout)] == seeded.ids
    monkeypatch.setenv("GENSTORE_URL", "bogus://elsewhere")
    after = run("history", "--json", "--url", url, store_url=None)
    assert after.exit_code == EXIT_OK
    assert len(json_lines(after.stdout)) == len(seeded.ids)


# --- reading ---------------------------------------------------------------------------------


def test_history_table_lists_every_operation_newest_first(run: Run, seeded: Seeded) -> None:
    result = run("history")
    assert result.exit_code == EXIT_OK
    positions = [result.stdout.index(op_id) for op_id in seeded.ids]
    assert positions == sorted(positions)
    # A prompt that looks like rich markup is printed as typed.
    assert "a [bold]cat[/]" in result.stdout
    assert "provider said no" in result.stdout


def test_history_json_lines_and_filters(run: Run, seeded: Seeded) -> None:
    every = json_lines(run("history", "--json").stdout)
    assert [r["operation_id"] for r in every] == seeded.ids
    alice = json_lines(run("history", "--json", "--user", "alice").stdout)
    assert {r["user_id"] for r in alice} == {"alice"} and len(alice) == 3
    videos = json_lines(run("history", "--json", "-t", "text_to_video").stdout)
    assert [r["operation_type"] for r in videos] == ["text_to_video"]
    failed = json_lines(run("history", "--json", "--status", "failed").stdout)
    assert [r["error"] for r in failed] == ["provider said no"]
    recent = json_lines(run("history", "--json", "--since", "7d").stdout)
    assert [r["operation_id"] for r in recent] == seeded.ids[:3]
    old = json_lines(run("history", "--json", "--until", "30d").stdout)
    assert [r["operation_id"] for r in old] == seeded.old_ids
    cutoff = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    assert len(json_lines(run("history", "--json", "--until", cutoff).stdout)) == 2


def test_history_pages_with_the_cursor_printed_on_stderr(run: Run, seeded: Seeded) -> None:
    seen: list[str] = []
    args = ["history", "--json", "--limit", "2"]
    for _ in range(10):
        result = run(*args)
        seen += [r["operation_id"] for r in json_lines(result.stdout)]
        if "--cursor" not in result.stderr:
            break
        cursor = result.stderr.split("--cursor", 1)[1].split()[0]
        args = ["history", "--json", "--limit", "2", "--cursor", cursor]
    assert seen == seeded.ids


def test_show_prints_the_record_as_json(run: Run, seeded: Seeded, url: str) -> None:
    result = run("show", seeded.ids[2])
    assert result.exit_code == EXIT_OK
    with genstore.open_store(url) as store:
        expected = store.get_operation(seeded.ids[2])
    assert genstore.OperationRecord.model_validate_json(result.stdout) == expected


def test_stats_counts_by_type_and_status(run: Run, seeded: Seeded) -> None:
    data = json.loads(run("stats", "--json").stdout)
    assert data["operations"] == 5
    assert data["by_type"] == {"image_edit_single": 1, "text_to_image": 3, "text_to_video": 1}
    assert data["by_status"] == {"failed": 1, "succeeded": 4}
    table = run("stats").stdout
    assert "operations" in table and "text_to_video" in table


def test_export_jsonl_and_csv_parse_back(run: Run, seeded: Seeded, tmp_path: Path) -> None:
    lines = json_lines(run("export", "--format", "jsonl").stdout)
    assert [r["operation_id"] for r in lines] == seeded.ids
    rows = list(csv.DictReader(io.StringIO(run("export", "--format", "csv").stdout)))
    assert [r["operation_id"] for r in rows] == seeded.ids
    assert rows[0]["error"] == "provider said no"
    assert rows[2]["prompt"] == "a [bold]cat[/]"
    target = tmp_path / "out.csv"
    result = run("export", "-f", "csv", "--output", str(target), "--user", "bob")
    assert result.exit_code == EXIT_OK
    assert "exported 2 operations" in result.stderr
    with target.open(newline="", encoding="utf-8") as file:
        assert {r["user_id"] for r in csv.DictReader(file)} == {"bob"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_to_an_unwritable_place_is_one_line(
    run: Run, seeded: Seeded, tmp_path: Path
) -> None:
    result = run("export", "--output", str(tmp_path / "missing-folder" / "out.jsonl"))
    assert result.exit_code == EXIT_FAILURE
    assert "cannot write" in one_error_line(result)


# --- maintenance -----------------------------------------------------------------------------


def test_cleanup_dry_run_counts_and_deletes_nothing(run: Run, seeded: Seeded) -> None:
    result = run("cleanup", "--older-than", "30d", "--dry-run", "--json")
    assert result.exit_code == EXIT_OK
    report = json.loads(result.stdout)
    assert report["operations"] == 2 and report["dry_run"] is True
    assert len(json_lines(run("history", "--json").stdout)) == 5
    assert "dry run" in run("cleanup", "--older-than", "30d", "--dry-run").stdout


def test_cleanup_deletes_old_operations_only(run: Run, seeded: Seeded, url: str) -> None:
    result = run("cleanup", "--older-than", "30d")
    assert result.exit_code == EXIT_OK
    assert "deleted" in result.stdout
    remaining = [r["operation_id"] for r in json_lines(run("history", "--json").stdout)]
    assert remaining == seeded.ids[:3]
    with genstore.open_store(url) as store:
        for op_id in seeded.old_ids:
            assert not store.blobs.exists(_keys.operation_record_key(op_id))


def test_reindex_brings_back_what_the_catalog_lost(run: Run, seeded: Seeded, url: str) -> None:
    with genstore.open_store(url) as store:
        store.catalog.delete_operation(seeded.ids[0])
    assert len(json_lines(run("history", "--json").stdout)) == 4
    result = run("reindex", "--json")
    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout)["operations"] == 5
    assert [r["operation_id"] for r in json_lines(run("history", "--json").stdout)] == seeded.ids
    assert "indexed 5 operations" in run("reindex").stdout


def test_reindex_exits_1_when_a_record_is_corrupt(run: Run, seeded: Seeded, url: str) -> None:
    with genstore.open_store(url) as store:
        store.blobs.write(_keys.operation_record_key(seeded.ids[0]), [b"{not json"])
    result = run("reindex")
    assert result.exit_code == EXIT_FAILURE
    assert "corrupt record skipped" in result.stderr


def _plant_orphan(url: str) -> str:
    """A result blob no record points to: what a save killed before its commit leaves."""
    _, op_id = new_operation_id()
    key = _keys.operation_result_key(op_id, "png")
    with genstore.open_store(url) as store:
        store.blobs.write(key, [b"\x89PNG orphan"], content_type="image/png")
    return key


def test_verify_finds_a_planted_orphan_and_fix_repairs_it(
    run: Run, seeded: Seeded, url: str
) -> None:
    assert run("verify").exit_code == EXIT_OK
    key = _plant_orphan(url)
    # Younger than the default 10 minutes of grace: a save may be writing it right now.
    assert run("verify").exit_code == EXIT_OK
    found = run("verify", "--grace", "0s")
    assert found.exit_code == EXIT_FAILURE
    assert key in found.stdout and "orphan blob" in found.stdout
    report = json.loads(run("verify", "--grace", "0s", "--json").stdout)
    assert report["orphan_blobs"] == [key] and report["ok"] is False
    fixed = run("verify", "--fix", "--grace", "0s")
    assert fixed.exit_code == EXIT_OK, fixed.output
    assert "repaired 1 of 1" in fixed.stdout
    with genstore.open_store(url) as store:
        assert not store.blobs.exists(key)
    assert run("verify", "--grace", "0s").exit_code == EXIT_OK


def test_verify_fix_exits_1_when_a_corrupt_record_remains(
    run: Run, seeded: Seeded, url: str
) -> None:
    with genstore.open_store(url) as store:
        store.blobs.write(_keys.operation_record_key(seeded.ids[1]), [b"garbage"])
    result = run("verify", "--fix", "--grace", "0s", "--json")
    assert result.exit_code == EXIT_FAILURE
    report = json.loads(result.stdout)
    assert report["remaining"]["corrupt"] == [_keys.operation_record_key(seeded.ids[1])]


# --- demo ------------------------------------------------------------------------------------


def test_demo_records_operations_and_images_then_history_shows_them(run: Run, url: str) -> None:
    result = run("demo")
    assert result.exit_code == EXIT_OK, result.output
    assert "recorded 3 operations and 3 images" in result.stdout
    records = json_lines(run("history", "--json").stdout)
    by_type = {r["operation_type"]: r for r in records}
    assert set(by_type) == {"text_to_image", "image_edit_single", "text_to_video"}
    for downloaded in ("text_to_image", "image_edit_single"):
        record = by_type[downloaded]
        assert record["results"][0]["content_type"] == "image/png", record
        assert record["result_error"] is None
        assert record["result_source_url"].startswith("http://127.0.0.1:")
    assert len(by_type["image_edit_single"]["inputs"]) == 2
    assert by_type["text_to_video"]["status"] == "failed"
    with genstore.open_store(url) as store:
        images = store.images.list(user_id=DEMO_USER)
        assert images.total == 3
        assert all(store.blobs.exists(image.key) for image in images.items)
        assert store.verify(grace=timedelta(0)).ok
    for image in images.items:
        assert image.image_id in result.stdout


def test_the_installed_script_runs_the_demo(tmp_path: Path) -> None:
    target = tmp_path / "demo-store"
    uv = shutil.which("uv")
    script = Path(sys.executable).with_name("genstore")
    command = (
        [uv, "run", "--no-sync", "genstore", "demo", "--url", str(target)]
        if uv
        else [str(script), "demo", "--url", str(target)]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENSTORE_")}
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "recorded 3 operations and 3 images" in done.stdout
    with genstore.open_store(target) as store:
        assert len(store.history().items) == 3


# --- spool, plugins, supabase-sql, migrate ---------------------------------------------------


def test_spool_status_and_drain(run: Run, url: str) -> None:
    with genstore.open_store(url) as store:
        spool = Spool(default_spool_dir(store.blobs))
        spool.write(
            SaveRequest.build(operation_type="text_to_image", prompt="spooled", user_id="carol")
        )
        spool.close()
    status = json.loads(run("spool", "status", "--json").stdout)
    assert status["count"] == 1
    assert "count" in run("spool", "status").stdout
    drained = run("spool", "drain")
    assert drained.exit_code == EXIT_OK, drained.output
    assert "replayed 1 records; 0 left" in drained.stdout
    assert [r["prompt"] for r in json_lines(run("history", "--json").stdout)] == ["spooled"]
    assert json.loads(run("spool", "status", "--json").stdout)["count"] == 0


def test_spool_status_lists_quarantined_records_and_retry_or_purge_them(run: Run, url: str) -> None:
    with genstore.open_store(url) as store:
        spool = Spool(default_spool_dir(store.blobs))
        ulids = [spool.write(SaveRequest.build(operation_type="t", prompt=p)) for p in ("a", "b")]
        for ulid in ulids:
            claimed = spool.claim(ulid)
            assert claimed is not None
            claimed.quarantine("RuntimeError: a hook broke")
        spool.close()
    status = json.loads(run("spool", "status", "--json").stdout)
    assert (status["count"], status["quarantined"]) == (0, 2)
    assert [q["id"] for q in status["quarantine"]] == sorted(ulids)
    assert {q["error"] for q in status["quarantine"]} == {"RuntimeError: a hook broke"}
    assert f"quarantined {ulids[0]}: RuntimeError" in run("spool", "status").stdout
    assert run("spool", "retry", ulids[0]).exit_code == EXIT_OK
    assert run("spool", "purge", ulids[1]).exit_code == EXIT_OK
    assert json.loads(run("spool", "status", "--json").stdout)["quarantined"] == 0
    missing = run("spool", "purge", ulids[1])
    assert missing.exit_code == EXIT_NOT_FOUND
    one_error_line(missing)
    assert run("spool", "drain").exit_code == EXIT_OK
    assert [r["prompt"] for r in json_lines(run("history", "--json").stdout)] == ["a"]


def test_spool_drain_exits_1_when_the_store_refuses(
    run: Run, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with genstore.open_store(url) as store:
        spool = Spool(default_spool_dir(store.blobs))
        spool.write(SaveRequest.build(operation_type="text_to_image", prompt="waits"))
        spool.close()

    def down(*args: Any, **kwargs: Any) -> None:
        raise BackendUnavailable("store is down")

    monkeypatch.setattr(genstore.Store, "save", down)
    result = run("spool", "drain", "--json")
    assert result.exit_code == EXIT_FAILURE
    assert json.loads(result.stdout)["left"] == 1
    assert json.loads(run("spool", "status", "--json").stdout)["count"] == 1


class _ExplodingSchemes:
    @hookimpl
    def genstore_backends(self) -> list[Any]:
        raise RuntimeError("cannot list")


def test_plugins_lists_schemes_and_failures(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "genstore._cli._extras.plugin_load_errors", lambda: {"broken": "ImportError: nope"}
    )
    register_plugin(_ExplodingSchemes(), name="exploding")
    try:
        result = run("plugins", "--json", store_url=None)
    finally:
        unregister_plugin("exploding")
    assert result.exit_code == EXIT_OK
    data = json.loads(result.stdout)
    schemes = {row["scheme"]: row["plugin"] for row in data["schemes"]}
    assert schemes["file"] == "local" and schemes["sqlite"] == "sqlite"
    assert schemes["s3a"] == "s3" and schemes["postgres"] == "postgres"  # every declared scheme
    assert data["failed"]["broken"] == "ImportError: nope"
    assert "cannot list" in data["failed"]["exploding"]
    table = run("plugins", store_url=None).stdout
    assert "file" in table and "failed to load" in table and "broken" in table


def test_supabase_sql_prints_the_migration(run: Run) -> None:
    result = run("supabase-sql", store_url=None)
    assert result.exit_code == EXIT_OK
    assert "create table if not exists genstore_operations" in result.stdout.lower()


def test_supabase_sql_without_the_adapters_names_the_extra(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "genstore_adapters", None)
    monkeypatch.delitem(sys.modules, "genstore_adapters.supabase", raising=False)
    result = run("supabase-sql", store_url=None)
    assert result.exit_code == EXIT_STORE
    assert "genstore[supabase]" in one_error_line(result)


@dataclass
class _Report:
    records: int = 0
    images: int = 0
    artefacts: int = 0
    bytes: int = 0
    skipped: int = 0
    verified: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def _install_stand_in(monkeypatch: pytest.MonkeyPatch, calls: list[dict[str, Any]]) -> None:
    """A fake ``genstore._migrate``: indexes each record in the destination's catalog, and
    fails bob's records, reporting them as the real one's report does."""
    module = ModuleType("genstore._migrate")

    def migrate(src: Any, dst: Any, *, verify: bool = False, progress: Any = None) -> _Report:
        calls.append({"verify": verify})
        report = _Report()
        for record in src.iter_operations():
            if record.user_id == "bob":
                report.failed += 1
                report.failures.append(f"{record.operation_id}: refused")
                continue
            dst.catalog.upsert_operation(record)
            report.records += 1
            if progress:
                progress(1)
        return report

    module.migrate = migrate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "genstore._migrate", module)


def test_migrate_copies_verifies_and_prints_a_summary(
    run: Run, seeded: Seeded, url: str, tmp_path: Path
) -> None:
    dst = str(tmp_path / "copy")
    with genstore.open_store(url) as store:
        for op_id in seeded.ids:
            if store.get_operation(op_id).user_id == "bob":
                store.delete_operation(op_id)
    result = run("migrate", url, dst, "--verify", "--json", store_url=None)
    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(result.stdout)
    assert report["records"] == 3 and report["failures"] == [] and report["failed"] == 0
    # --verify reaches the real migrate: every artefact copied had its sha256 checked.
    assert report["artefacts"] > 0 and report["verified"] == report["artefacts"]
    with genstore.open_store(dst) as store:
        assert len(store.history().items) == 3
    table = run("migrate", url, dst, store_url=None).stdout
    assert "records" in table and "skipped" in table


def test_migrate_with_failures_exits_1_and_lists_them(
    run: Run, seeded: Seeded, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_stand_in(monkeypatch, [])
    result = run("migrate", url, str(tmp_path / "copy"), store_url=None)
    assert result.exit_code == EXIT_FAILURE, result.output
    assert result.stderr.count("failed: ") == 2
    as_json = run("migrate", url, str(tmp_path / "copy"), "--json", store_url=None)
    assert as_json.exit_code == EXIT_FAILURE
    assert json.loads(as_json.stdout)["failed"] == 2


def test_migrate_between_unknown_schemes_is_exit_3(run: Run) -> None:
    result = run("migrate", "bogus://a", "bogus://b", store_url=None)
    assert result.exit_code == EXIT_STORE
    one_error_line(result)


# --- read-only commands where no store exists ------------------------------------------------

READ_ONLY = [
    ["history"],
    ["show", "20250101_01JGB00000000000000000000A"],
    ["stats"],
    ["export"],
    ["verify"],
]


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: c[0])
def test_read_only_commands_where_no_store_is_exit_3_and_create_nothing(
    run: Run, tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "nowhere" / "store"
    result = run(*command, store_url=str(missing))
    assert result.exit_code == EXIT_STORE
    assert one_error_line(result) == f"error: no genstore store at {missing}"
    assert not (tmp_path / "nowhere").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(*command, store_url=str(empty))
    assert result.exit_code == EXIT_STORE
    assert "no genstore store at" in one_error_line(result)
    assert list(empty.iterdir()) == []


def test_the_default_store_is_not_created_by_a_read(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("history", store_url=None)
    assert result.exit_code == EXIT_STORE
    assert "no genstore store at" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_commands_that_write_still_create_the_store(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "new-store"
    assert run("verify", "--fix", store_url=str(target)).exit_code == EXIT_OK
    assert run("history", store_url=str(target)).exit_code == EXIT_OK


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: c[0])
def test_read_only_commands_on_a_bucket_that_does_not_exist_are_exit_3(
    run: Run, s3_server: Any, s3_client: Any, command: list[str]
) -> None:
    store_url = f"s3://no-such-bucket-here/store?endpoint_url={s3_server.endpoint_url}"
    result = run(*command, store_url=store_url)
    assert result.exit_code == EXIT_STORE
    assert one_error_line(result).startswith(
        "error: no genstore store at s3://no-such-bucket-here/"
    )
    names = [b["Name"] for b in s3_client.list_buckets().get("Buckets", [])]
    assert "no-such-bucket-here" not in names


def test_read_only_commands_on_an_empty_prefix_are_exit_3(
    run: Run, s3_url: str, s3_client: Any, s3_bucket: str
) -> None:
    result = run("history", store_url=s3_url)
    assert result.exit_code == EXIT_STORE
    assert "no genstore store at s3://" in one_error_line(result)
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("postgres@127.0.0.1:5432/gst_no_such_db", 'database "gst_no_such_db" does not exist'),
        ("gst_no_such_role@127.0.0.1:5432/test", 'role "gst_no_such_role" does not exist'),
    ],
    ids=["database missing", "role missing"],
)
def test_a_postgres_catalog_no_retry_can_fix_is_one_line_and_exit_3(
    run: Run, seeded: Seeded, postgres_url: str, where: str, said: str
) -> None:
    result = run("history", "--catalog", f"postgresql://{where}")
    assert result.exit_code == EXIT_STORE
    assert said in one_error_line(result)


# --- corrupt catalogs ------------------------------------------------------------------------


def test_a_corrupt_catalog_row_is_named_then_verify_fix_rewrites_it(
    run: Run, seeded: Seeded, url: str
) -> None:
    victim = seeded.ids[1]
    with sqlite3.connect(Path(url) / "catalog.sqlite3") as db:
        db.execute(
            "UPDATE operations SET record = '{\"oops\": 1' WHERE operation_id = ?", (victim,)
        )
    history = run("history")
    assert history.exit_code == EXIT_FAILURE
    assert victim in one_error_line(history) and "verify --fix" in history.stderr
    report = json.loads(run("verify", "--grace", "0s", "--json").stdout)
    assert report["corrupt_index"] == [victim] and report["stale_index"] == []
    assert report["ok"] is False
    found = run("verify", "--grace", "0s")
    assert "corrupt catalog row" in found.stdout and found.exit_code == EXIT_FAILURE
    fixed = run("verify", "--fix", "--grace", "0s")
    assert fixed.exit_code == EXIT_OK, fixed.output
    assert [r["operation_id"] for r in json_lines(run("history", "--json").stdout)] == seeded.ids


@pytest.mark.parametrize("repair", [["reindex"], ["verify", "--fix", "--grace", "0s"]])
def test_a_catalog_file_that_is_not_a_database_is_moved_aside_and_rebuilt(
    run: Run, seeded: Seeded, url: str, repair: list[str]
) -> None:
    catalog = Path(url) / "catalog.sqlite3"
    catalog.write_bytes(b"this is not a database, just bytes " * 100)
    history = run("history")  # the store opens; history says what to do instead of lying
    assert history.exit_code == EXIT_FAILURE
    assert "reindex" in one_error_line(history)
    moved = sorted(Path(url).glob("catalog.sqlite3.corrupt-*"))
    assert [p.read_bytes()[:8] for p in moved] == [b"this is "]
    assert run("stats", "--json").exit_code == EXIT_OK
    assert run(*repair).exit_code == EXIT_OK
    assert [r["operation_id"] for r in json_lines(run("history", "--json").stdout)] == seeded.ids
    assert run("verify", "--grace", "0s").exit_code == EXIT_OK
