"""The PostgreSQL catalog against the real server on 127.0.0.1:5432 (database ``test``).

Every server test works in its own random schema, dropped afterwards. Without the server they
skip, except under CI=true where they fail. The URL parsing and error table tests need no server.
"""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import genstore
import psycopg
import pytest
from genstore import (
    AlreadyExists,
    ArtifactRef,
    AuthError,
    BackendUnavailable,
    ConfigurationError,
    CorruptRecord,
    ImageRecord,
    ImageStatus,
    InvalidInput,
    MissingDependency,
    OperationRecord,
    OperationStatus,
    RequestInfo,
)
from genstore._plugins import catalog_specs, open_catalog
from genstore._url import parse_catalog_url
from genstore.plugin import HistoryQuery
from genstore_adapters.local.blobs import LocalBlobStore
from genstore_adapters.postgres import catalog as catalog_module
from genstore_adapters.postgres import hooks as postgres_hooks
from genstore_adapters.postgres.catalog import PostgresCatalog
from genstore_adapters.postgres.config import settings_from_url
from genstore_adapters.postgres.errors import is_transient, retrying, translate
from genstore_adapters.postgres.schema import _MIGRATIONS, LATEST_VERSION
from helpers import free_port, need_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared_catalog import check_stores_stay_apart

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture
def pg_admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A plain autocommit connection, to inspect tables and kill the catalog's backends."""
    need_server(_pg_available(), "PostgreSQL on 127.0.0.1:5432")
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        yield conn


@pytest.fixture
def pg_schema(pg_admin: psycopg.Connection[tuple[object, ...]]) -> Iterator[str]:
    """A fresh schema name (not created: the catalog creates it), dropped afterwards."""
    name = f"gst_{uuid.uuid4().hex[:12]}"
    yield name
    pg_admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    """A catalog URL on the fresh schema; the application name marks this test's connections."""
    return f"{PG_DSN}?schema={pg_schema}&application_name={pg_schema}"


@pytest.fixture
def pg_catalog(pg_url: str) -> Iterator[PostgresCatalog]:
    catalog = PostgresCatalog(pg_url)
    yield catalog
    catalog.close()


def op(
    n: int,
    *,
    user: str | None = "u1",
    kind: str = "text_to_image",
    failed: bool = False,
    at: datetime | None = None,
    key: str | None = None,
) -> OperationRecord:
    return OperationRecord(
        operation_id=f"20250301_{n:06d}",
        operation_type=kind,
        status=OperationStatus.FAILED if failed else OperationStatus.SUCCEEDED,
        created_at=at or T0 + timedelta(seconds=n),
        user_id=user,
        idempotency_key=key,
        prompt=f"prompt {n}",
    )


def image(user: str, n: int, *, status: ImageStatus = ImageStatus.GENERATED) -> ImageRecord:
    when = T0 + timedelta(seconds=n // 2)  # pairs share created_at: ties order by image_id
    return ImageRecord(
        image_id=f"img_{n:04d}", user_id=user, prompt="p", key=f"images/{user}/{n}.png",
        status=status, size=10, sha256="0" * 64, width=1, height=1,
        created_at=when, updated_at=when, metadata={"steps": n},
    )  # fmt: skip


def ids(records: list[OperationRecord]) -> list[str]:
    return [r.operation_id for r in records]


# -- URL settings and the error table (no server) ----------------------------------------------


def test_genstore_options_are_removed_and_libpq_options_kept() -> None:
    s = settings_from_url(
        "postgresql://me:secret@db:6543/x?schema=tenant_1&sslmode=disable&deadline=2"
    )
    assert (s.schema, s.deadline) == ("tenant_1", 2.0)
    assert "schema" not in s.conninfo
    assert "deadline" not in s.conninfo
    assert "sslmode=disable" in s.conninfo
    assert "application_name=genstore" in s.conninfo
    assert "connect_timeout=2" in s.conninfo
    assert s.display_url == "postgresql://me@db:6543/x"
    assert "secret" not in s.display_url


def test_user_connect_timeout_and_application_name_win() -> None:
    s = settings_from_url("postgres://h1:1,h2:2/x?connect_timeout=9&application_name=svc")
    assert "connect_timeout=9" in s.conninfo
    assert "application_name=svc" in s.conninfo
    assert s.display_url == "postgres://h1:1,h2:2/x"
    assert s.schema == "public"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://h/x?schema=bad-name",
        "postgresql://h/x?schema=",
        "postgresql://h/x?deadline=soon",
        "postgresql://h/x?deadline=0",
        "postgresql://h/x?pool_min=4&pool_max=2",
        "mysql://h/x",
    ],
)
def test_bad_settings_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        settings_from_url(url)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (psycopg.OperationalError("connection reset"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.SerializationFailure("could not serialize"), True),
        (psycopg.errors.DeadlockDetected("deadlock"), True),
        (psycopg.errors.CannotConnectNow("starting up"), True),
        (psycopg.errors.TooManyConnections("too many clients"), True),
        # Only connection-level failures are retried (genstore_adapters._sqlstate): a statement
        # or lock timeout is the query's own, and waiting the deadline would not cure it.
        (psycopg.errors.QueryCanceled("statement timeout"), False),
        (psycopg.errors.LockNotAvailable("lock timeout"), False),
        (psycopg.errors.InvalidPassword("bad password"), False),
        (psycopg.errors.InvalidCatalogName("no such database"), False),
        (psycopg.errors.UndefinedTable("no such table"), False),
        (psycopg.errors.UniqueViolation("duplicate"), False),
        (psycopg.errors.ProgramLimitExceeded("index row too big"), False),
    ],
)
def test_transient_errors_are_told_apart(error: psycopg.Error, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.errors.UniqueViolation("duplicate"), AlreadyExists),
        (psycopg.errors.InvalidPassword("bad password"), AuthError),
        (psycopg.DataError("NUL in text"), InvalidInput),
        (psycopg.errors.ProgramLimitExceeded("index row too big"), InvalidInput),
        (psycopg.errors.UndefinedTable("no such table"), BackendUnavailable),
    ],
)
def test_lasting_errors_translate_to_genstore_errors(
    error: psycopg.Error, expected: type[Exception]
) -> None:
    assert type(translate(error, "op")) is expected


def test_retrying_retries_transient_errors_then_succeeds() -> None:
    failures = [psycopg.errors.SerializationFailure("x"), psycopg.OperationalError("reset")]

    def attempt(left: float) -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert retrying(attempt, what="op", deadline=5) == "ok"
    assert failures == []


def test_retrying_gives_up_at_the_deadline_with_backend_unavailable() -> None:
    calls = 0

    def attempt(left: float) -> None:
        nonlocal calls
        calls += 1
        raise psycopg.errors.AdminShutdown("terminating connection")

    with pytest.raises(BackendUnavailable, match=r"did not answer within 0\.2 s") as info:
        retrying(attempt, what="op", deadline=0.2)
    assert calls > 1
    assert isinstance(info.value.__cause__, psycopg.errors.AdminShutdown)


def test_retrying_does_not_retry_lasting_errors() -> None:
    calls = 0

    def attempt(left: float) -> None:
        nonlocal calls
        calls += 1
        raise psycopg.errors.UndefinedTable("gone")

    with pytest.raises(BackendUnavailable, match="gone"):
        retrying(attempt, what="op", deadline=5)
    assert calls == 1


def test_missing_psycopg_names_the_extra_from_the_spec(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    for name in [m for m in sys.modules if m.startswith("genstore_adapters.postgres.")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.import_module("genstore_adapters.postgres.hooks")  # the spec imports fine
    with pytest.raises(MissingDependency, match=r"pip install 'genstore\[postgres\]'") as info:
        open_catalog(parse_catalog_url(PG_DSN), LocalBlobStore(tmp_path))
    assert (info.value.extra, info.value.package) == ("postgres", "psycopg")


def test_the_spec_declares_both_schemes_and_the_extra() -> None:
    spec = postgres_hooks.SPEC
    assert spec.schemes == ("postgresql", "postgres") and spec.extra == "postgres"
    assert ("postgres", spec) in catalog_specs().specs


# -- against the server --------------------------------------------------------------------------


@pytest.mark.postgres
def test_registry_opens_postgres_and_postgresql_urls(pg_url: str, tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    for url in (pg_url, pg_url.replace("postgresql://", "postgres://", 1)):
        catalog = open_catalog(parse_catalog_url(url), blobs)
        assert isinstance(catalog, PostgresCatalog)
        assert catalog.stats().operations == 0
        catalog.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@pytest.mark.postgres
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prompt=st.none() | st.text(),
    parameters=json_values,
    user=st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.@:+=-]{0,20}", fullmatch=True),
    kind=st.text(min_size=1).filter(lambda s: "\x00" not in s),
    created=st.datetimes(timezones=st.just(UTC)),
)
def test_any_operation_round_trips_exactly(
    pg_catalog: PostgresCatalog,
    prompt: str | None,
    parameters: object,
    user: str | None,
    kind: str,
    created: datetime,
) -> None:
    record = OperationRecord(
        operation_id=f"op_{uuid.uuid4().hex}", operation_type=kind,
        status=OperationStatus.FAILED, prompt=prompt, parameters=parameters,
        user_id=user, created_at=created, error="boom", duration_ms=1.5,
        inputs=[ArtifactRef(key="inputs/a", sha256="ab" * 32, size=3, content_type="image/png")],
        request=RequestInfo(route="/gen", method="POST", status_code=None),
    )  # fmt: skip
    pg_catalog.upsert_operation(record)
    got = pg_catalog.get_operation(record.operation_id)
    assert got == record
    assert got is not None
    assert got.model_dump_json() == record.model_dump_json()


@pytest.mark.postgres
def test_upsert_replaces_and_delete_removes(pg_catalog: PostgresCatalog) -> None:
    pg_catalog.upsert_operation(op(1))
    changed = op(1, user="u2", failed=True)
    pg_catalog.upsert_operation(changed)
    assert pg_catalog.get_operation(changed.operation_id) == changed
    assert pg_catalog.query_operations(HistoryQuery(user_id="u1")) == []
    assert pg_catalog.stats().operations == 1
    pg_catalog.delete_operation(changed.operation_id)
    pg_catalog.delete_operation(changed.operation_id)  # missing is not an error
    assert pg_catalog.get_operation(changed.operation_id) is None


def _dataset() -> list[OperationRecord]:
    records = []
    for n in range(60):
        # Every fourth record shares its instant with the previous ones: ties order by id.
        at = T0 + timedelta(seconds=n - n % 4)
        records.append(
            op(n, user=("u1", "u2", None)[n % 3], kind=("t2i", "edit")[n % 5 % 2],
               failed=n % 7 == 0, at=at)
        )  # fmt: skip
    return records


def _expected(records: list[OperationRecord], q: HistoryQuery) -> list[str]:
    def keep(r: OperationRecord) -> bool:
        return (
            (q.user_id is None or r.user_id == q.user_id)
            and (q.operation_type is None or r.operation_type == q.operation_type)
            and (q.status is None or r.status == q.status)
            and (q.since is None or r.created_at >= q.since)
            and (q.until is None or r.created_at < q.until)
            and (q.before is None or (r.created_at, r.operation_id) < q.before)
        )

    chosen = sorted(filter(keep, records), key=lambda r: (r.created_at, r.operation_id))
    return ids(chosen[::-1][: q.limit])


@pytest.mark.postgres
def test_every_filter_combination_matches_python(pg_catalog: PostgresCatalog) -> None:
    records = _dataset()
    for r in records:
        pg_catalog.upsert_operation(r)
    for user, kind, status, since, until in itertools.product(
        (None, "u1", "u2", "nobody"),
        (None, "t2i", "edit"),
        (None, "succeeded", "failed"),
        (None, T0 + timedelta(seconds=8)),
        (None, T0 + timedelta(seconds=40)),
    ):
        q = HistoryQuery(user_id=user, operation_type=kind, status=status, since=since,
                         until=until, limit=100)  # fmt: skip
        assert ids(pg_catalog.query_operations(q)) == _expected(records, q), q


@pytest.mark.postgres
def test_since_is_inclusive_until_exclusive_and_naive_means_utc(
    pg_catalog: PostgresCatalog,
) -> None:
    for n in (1, 2, 3):
        pg_catalog.upsert_operation(op(n))
    naive = (T0 + timedelta(seconds=2)).replace(tzinfo=None)
    assert ids(pg_catalog.query_operations(HistoryQuery(since=naive))) == ids([op(3), op(2)])
    assert ids(pg_catalog.query_operations(HistoryQuery(until=naive))) == ids([op(1)])


@pytest.mark.postgres
def test_cursor_walks_every_record_once_newest_first_through_ties(
    pg_catalog: PostgresCatalog,
) -> None:
    records = _dataset()
    for r in records:
        pg_catalog.upsert_operation(r)
    for user in (None, "u1"):
        walked: list[str] = []
        before: tuple[datetime, str] | None = None
        for _ in range(len(records)):  # bounded: at most one page per record
            page = pg_catalog.query_operations(HistoryQuery(user_id=user, limit=7, before=before))
            walked += ids(page)
            if len(page) < 7:
                break
            before = (page[-1].created_at, page[-1].operation_id)
        assert walked == _expected(records, HistoryQuery(user_id=user, limit=1000))


@pytest.mark.postgres
def test_limit_zero_is_empty_and_negative_is_invalid(pg_catalog: PostgresCatalog) -> None:
    pg_catalog.upsert_operation(op(1))
    assert pg_catalog.query_operations(HistoryQuery(limit=0)) == []
    assert ids(pg_catalog.query_operations(HistoryQuery(limit=1))) == ids([op(1)])
    with pytest.raises(InvalidInput):
        pg_catalog.query_operations(HistoryQuery(limit=-1))


@pytest.mark.postgres
def test_idempotency_key_stays_unique(pg_catalog: PostgresCatalog) -> None:
    first = op(1, key="req-42")
    pg_catalog.upsert_operation(first)
    pg_catalog.upsert_operation(op(2, key="other"))
    with pytest.raises(AlreadyExists, match="req-42"):
        pg_catalog.upsert_operation(op(3, key="req-42"))
    pg_catalog.upsert_operation(first)  # the same record again is fine
    assert pg_catalog.get_operation(op(3).operation_id) is None
    assert pg_catalog.stats().operations == 2


@pytest.mark.postgres
def test_values_postgres_refuses_are_invalid_input(pg_catalog: PostgresCatalog) -> None:
    with pytest.raises(InvalidInput):
        pg_catalog.upsert_operation(op(1, key="nul\x00inside"))


@pytest.mark.postgres
def test_images_page_newest_first_with_total_and_status(pg_catalog: PostgresCatalog) -> None:
    mine = [image("alice", n, status=(ImageStatus.GENERATED, ImageStatus.PRINTED)[n % 3 == 0])
            for n in range(23)]  # fmt: skip
    for record in [*mine, image("bob", 99)]:
        pg_catalog.upsert_image(record)
    newest = sorted(mine, key=lambda r: (r.created_at, r.image_id), reverse=True)
    pages = [pg_catalog.list_images("alice", status=None, offset=o, limit=10) for o in (0, 10, 20)]
    assert [total for _, total in pages] == [23, 23, 23]
    assert [r for page, _ in pages for r in page] == newest
    printed, total = pg_catalog.list_images("alice", status=ImageStatus.PRINTED, offset=2, limit=3)
    expected = [r for r in newest if r.status is ImageStatus.PRINTED]
    assert (printed, total) == (expected[2:5], len(expected))
    assert pg_catalog.list_images("alice", status=None, offset=50, limit=10) == ([], 23)
    assert pg_catalog.list_images("carol", status=None, offset=0, limit=10) == ([], 0)


@pytest.mark.postgres
def test_image_get_update_delete_stay_per_user(pg_catalog: PostgresCatalog) -> None:
    record = image("alice", 1)
    pg_catalog.upsert_image(record)
    assert pg_catalog.get_image("alice", record.image_id) == record
    assert pg_catalog.get_image("bob", record.image_id) is None
    ordered = record.model_copy(update={"status": ImageStatus.ORDERED})
    pg_catalog.upsert_image(ordered)
    assert pg_catalog.list_images("alice", status=ImageStatus.ORDERED, offset=0, limit=5) == (
        [ordered],
        1,
    )
    pg_catalog.delete_image("bob", record.image_id)  # another user's: nothing happens
    assert pg_catalog.get_image("alice", record.image_id) == ordered
    pg_catalog.delete_image("alice", record.image_id)
    assert pg_catalog.get_image("alice", record.image_id) is None


@pytest.mark.postgres
def test_id_listings_walk_every_row_in_batches(
    pg_catalog: PostgresCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "_ID_BATCH", 3)
    for n in range(10):
        pg_catalog.upsert_operation(op(n))
        pg_catalog.upsert_image(image(f"user{n % 4}", n))
    assert sorted(pg_catalog.operation_ids()) == sorted(ids([op(n) for n in range(10)]))
    assert list(pg_catalog.image_ids()) == sorted(
        (f"user{n % 4}", f"img_{n:04d}") for n in range(10)
    )


@pytest.mark.postgres
def test_stats_count_by_type_and_status_and_clear_empties(pg_catalog: PostgresCatalog) -> None:
    for r in (op(1, kind="a"), op(2, kind="a", failed=True), op(3, kind="b")):
        pg_catalog.upsert_operation(r)
    pg_catalog.upsert_image(image("alice", 1))
    stats = pg_catalog.stats()
    assert (stats.operations, stats.images) == (3, 1)
    assert stats.by_type == {"a": 2, "b": 1}
    assert stats.by_status == {"succeeded": 2, "failed": 1}
    pg_catalog.clear()
    stats = pg_catalog.stats()
    assert (stats.operations, stats.images, stats.by_type) == (0, 0, {})
    assert list(pg_catalog.operation_ids()) == []
    assert list(pg_catalog.image_ids()) == []


@pytest.mark.postgres
def test_a_second_instance_reuses_the_schema(pg_catalog: PostgresCatalog, pg_url: str) -> None:
    pg_catalog.upsert_operation(op(1))
    with_deadline = PostgresCatalog(pg_url, deadline=2)
    try:
        assert with_deadline.get_operation(op(1).operation_id) == op(1)
    finally:
        with_deadline.close()


@pytest.mark.postgres
def test_a_newer_schema_version_is_refused(
    pg_catalog: PostgresCatalog, pg_url: str, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    pg_catalog.stats()
    schema = pg_catalog.settings.schema
    pg_admin.execute(f'INSERT INTO "{schema}".genstore_schema_version (version) VALUES (99)')
    newer = PostgresCatalog(pg_url)
    try:
        with pytest.raises(ConfigurationError, match="version 99"):
            newer.stats()
    finally:
        newer.close()


@pytest.mark.postgres
def test_schema_creation_racing_from_threads_applies_once(
    pg_url: str, pg_schema: str, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    catalogs = [PostgresCatalog(pg_url) for _ in range(6)]
    barrier = threading.Barrier(len(catalogs), timeout=30)
    errors: list[BaseException] = []

    def start(n: int) -> None:
        try:
            barrier.wait()
            catalogs[n].upsert_operation(op(n))
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(len(catalogs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for c in catalogs:
        c.close()
    assert errors == []
    versions = pg_admin.execute(f'SELECT version FROM "{pg_schema}".genstore_schema_version')
    assert versions.fetchall() == [(v,) for v in range(1, LATEST_VERSION + 1)]
    count = pg_admin.execute(f'SELECT count(*) FROM "{pg_schema}".genstore_operations').fetchone()
    assert count == (len(catalogs),)


_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from genstore import OperationRecord
    from genstore_adapters.postgres.catalog import PostgresCatalog

    url, worker, own, shared = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    catalog = PostgresCatalog(url, deadline=30)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    for n in range(max(own, shared)):
        for name, count in ((f"w{worker}", own), ("shared", shared)):
            if n < count:
                catalog.upsert_operation(OperationRecord(
                    operation_id=f"{name}_{n:05d}", operation_type="text_to_image",
                    status="succeeded", created_at=t0 + timedelta(seconds=n), user_id=worker,
                ))
    catalog.close()
    """
)


@pytest.mark.postgres
def test_processes_writing_at_once_lose_nothing_and_duplicate_nothing(
    pg_url: str, pg_schema: str, pg_admin: psycopg.Connection[tuple[object, ...]], tmp_path: Path
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    workers, own, shared = 4, 150, 60
    # The schema does not exist yet: the processes also race to create it.
    procs = [
        subprocess.Popen([sys.executable, str(script), pg_url, str(w), str(own), str(shared)],
                         stderr=subprocess.PIPE, text=True)
        for w in range(workers)
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    table = f'"{pg_schema}".genstore_operations'
    rows = pg_admin.execute(f"SELECT operation_id, user_id, record FROM {table}").fetchall()
    found = [str(r[0]) for r in rows]
    assert len(found) == len(set(found)) == workers * own + shared
    assert set(found) == {f"w{w}_{n:05d}" for w in range(workers) for n in range(own)} | {
        f"shared_{n:05d}" for n in range(shared)
    }
    for _, user_id, record in rows:  # each row is whole: its columns agree with its record
        assert OperationRecord.model_validate_json(str(record)).user_id == user_id


def _kill_backends(admin: psycopg.Connection[tuple[object, ...]], application_name: str) -> int:
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = %s AND pid <> pg_backend_pid()",
        (application_name,),
    ).fetchall()
    return sum(1 for (killed,) in rows if killed)


@pytest.mark.postgres
def test_pool_recovers_after_its_connections_are_terminated(
    pg_url: str, pg_schema: str, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    catalog = PostgresCatalog(pg_url, pool_min=2)
    try:
        catalog.upsert_operation(op(0))
        for n in range(1, 4):
            assert _kill_backends(pg_admin, pg_schema) >= 1
            catalog.upsert_operation(op(n))  # the write right after the kill succeeds
            assert _kill_backends(pg_admin, pg_schema) >= 1
            assert catalog.get_operation(op(n).operation_id) == op(n)
        assert sorted(catalog.operation_ids()) == ids([op(n) for n in range(4)])
    finally:
        catalog.close()


@pytest.mark.postgres
def test_a_statement_stuck_on_a_lock_gives_up_then_recovers(
    pg_catalog: PostgresCatalog, pg_schema: str, pg_url: str
) -> None:
    pg_catalog.stats()
    short = PostgresCatalog(pg_url, deadline=0.5)
    try:
        with psycopg.connect(PG_DSN) as locker:
            locker.execute(f'LOCK TABLE "{pg_schema}".genstore_operations IN ACCESS EXCLUSIVE MODE')
            started = time.monotonic()
            # The statement timeout (the deadline) ends it; not retried: it already took the
            # whole deadline, and only connection-level failures are.
            with pytest.raises(BackendUnavailable, match="statement timeout"):
                short.upsert_operation(op(1))
            assert time.monotonic() - started < 0.5 + 2.0
        short.upsert_operation(op(1))  # lock released with the locker's transaction
        assert short.get_operation(op(1).operation_id) == op(1)
    finally:
        short.close()


def test_unreachable_server_is_backend_unavailable_within_the_deadline() -> None:
    port = free_port()  # bound then released: nothing listens there
    catalog = PostgresCatalog(f"postgresql://postgres@127.0.0.1:{port}/test", deadline=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
            catalog.get_operation("x")
        # Not a speed goal: a hang guard. The call must end near its deadline, not never.
        assert time.monotonic() - started < 30
    finally:
        catalog.close()


@pytest.mark.postgres
def test_a_closed_catalog_refuses_calls(pg_catalog: PostgresCatalog) -> None:
    pg_catalog.close()
    pg_catalog.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        pg_catalog.stats()


# -- one catalog, several stores -----------------------------------------------------------------


@pytest.mark.postgres
def test_stores_sharing_a_catalog_never_see_or_touch_each_others_rows(pg_url: str) -> None:
    a = PostgresCatalog(pg_url, store="s3://bucket/a")
    b = PostgresCatalog(pg_url, store="s3://bucket/b")
    try:
        a.upsert_operation(op(1, key="same-key"))
        a.upsert_operation(op(2))
        a.upsert_image(image("alice", 1))
        theirs = op(1, key="same-key").model_copy(update={"prompt": "b's own"})
        b.upsert_operation(theirs)  # the same id and idempotency key in another store: no clash
        assert a.get_operation(op(1).operation_id) == op(1, key="same-key")
        assert b.get_operation(op(1).operation_id) == theirs
        assert ids(b.query_operations(HistoryQuery())) == [op(1).operation_id]
        assert list(b.operation_ids()) == [op(1).operation_id]
        assert b.get_image("alice", "img_0001") is None and list(b.image_ids()) == []
        assert b.list_images("alice", status=None, offset=0, limit=10) == ([], 0)
        assert (b.stats().operations, b.stats().images) == (1, 0)
        b.delete_operation(op(2).operation_id)
        b.delete_image("alice", "img_0001")
        b.clear()
        assert (a.stats().operations, a.stats().images) == (2, 1)
        assert b.stats().operations == 0
    finally:
        a.close()
        b.close()


@pytest.mark.postgres
def test_a_version_1_catalog_migrates_on_open_and_its_rows_go_to_the_first_store(
    pg_url: str, pg_schema: str, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    from psycopg import sql

    pg_admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
    for statement in _MIGRATIONS[0]:
        pg_admin.execute(sql.SQL(statement).format(s=sql.Identifier(pg_schema)))
    pg_admin.execute(
        f'CREATE TABLE "{pg_schema}".genstore_schema_version (version integer PRIMARY KEY,'
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    pg_admin.execute(f'INSERT INTO "{pg_schema}".genstore_schema_version VALUES (1)')
    legacy = op(7)
    pg_admin.execute(
        f'INSERT INTO "{pg_schema}".genstore_operations (operation_id, created_at, user_id,'
        " operation_type, status, record) VALUES (%s, %s, %s, %s, %s, %s)",
        (legacy.operation_id, legacy.created_at, legacy.user_id, "text_to_image", "succeeded",
         legacy.model_dump_json()),
    )  # fmt: skip
    first = PostgresCatalog(pg_url, store="s3://bucket/first")
    later = PostgresCatalog(pg_url, store="s3://bucket/later")
    try:
        assert first.get_operation(legacy.operation_id) == legacy
        assert later.get_operation(legacy.operation_id) is None
        versions = pg_admin.execute(f'SELECT version FROM "{pg_schema}".genstore_schema_version')
        assert versions.fetchall() == [(v,) for v in range(1, LATEST_VERSION + 1)]
    finally:
        first.close()
        later.close()


@pytest.mark.postgres
def test_history_stats_verify_fix_and_reindex_of_one_store_never_touch_another(
    pg_url: str, pg_schema: str, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    def rows(store: str) -> list[tuple[str, ...]]:
        found = pg_admin.execute(
            f"SELECT operation_id, '', record FROM \"{pg_schema}\".genstore_operations"
            f" WHERE store = %s UNION ALL SELECT user_id, image_id, record"
            f' FROM "{pg_schema}".genstore_images WHERE store = %s',
            (store, store),
        ).fetchall()
        return sorted(tuple(str(v) for v in row) for row in found)

    def corrupt(store: str, operation_id: str) -> None:
        pg_admin.execute(
            f"UPDATE \"{pg_schema}\".genstore_operations SET record = 'garbage'"
            " WHERE store = %s AND operation_id = %s",
            (store, operation_id),
        )

    with (
        genstore.open_store(f"memory://{uuid.uuid4().hex}", catalog=pg_url) as a,
        genstore.open_store(f"memory://{uuid.uuid4().hex}", catalog=pg_url) as b,
    ):
        check_stores_stay_apart(a, b, rows, corrupt)


@pytest.mark.postgres
def test_a_row_that_does_not_parse_is_corrupt_record_naming_it(
    pg_catalog: PostgresCatalog, pg_schema: str, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    pg_catalog.upsert_operation(op(1))
    pg_catalog.upsert_operation(op(2))
    pg_catalog.upsert_image(image("alice", 1))
    assert list(pg_catalog.unreadable_rows()) == []
    pg_admin.execute(
        f"UPDATE \"{pg_schema}\".genstore_operations SET record = '{{}}' WHERE operation_id = %s",
        (op(1).operation_id,),
    )
    pg_admin.execute(f"UPDATE \"{pg_schema}\".genstore_images SET record = '[1'")
    with pytest.raises(CorruptRecord) as raised:
        pg_catalog.query_operations(HistoryQuery())
    assert (raised.value.key, raised.value.kind) == (op(1).operation_id, "operation")
    assert "PostgreSQL catalog" in str(raised.value) and "validation error" not in str(raised.value)
    with pytest.raises(CorruptRecord, match="alice/img_0001"):
        pg_catalog.list_images("alice", status=None, offset=0, limit=10)
    with pytest.raises(CorruptRecord):
        pg_catalog.get_image("alice", "img_0001")
    assert pg_catalog.get_operation(op(2).operation_id) == op(2)
    assert list(pg_catalog.unreadable_rows()) == [op(1).operation_id, "alice/img_0001"]


# -- refusals no retry can cure ------------------------------------------------------------------


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection attempt the catalog makes (its first check and its pool's), in order."""
    made: list[str] = []
    real = catalog_module._Connection.connect

    def counting(cls: type[object], /, conninfo: str = "", **kwargs: Any) -> object:
        made.append(conninfo)
        return real(conninfo, **kwargs)

    monkeypatch.setattr(catalog_module._Connection, "connect", classmethod(counting))
    return made


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each catalog call was attempted (a retry is a second attempt)."""
    made: Counter[str] = Counter()
    real = retrying

    def counting(attempt: Callable[[float], Any], *, what: str, **kwargs: Any) -> Any:
        def counted(seconds_left: float) -> Any:
            made[what] += 1
            return attempt(seconds_left)

        return real(counted, what=what, **kwargs)

    monkeypatch.setattr(catalog_module, "retrying", counting)
    return made


def _fails_at_once(url: str, expected: type[Exception], attempts: Counter[str]) -> str:
    """The one-line message of ``expected``, raised at the first attempt although the deadline
    would allow many retries (how long it takes is measured in bench/, not asserted here)."""
    catalog = PostgresCatalog(url, deadline=10)
    try:
        with pytest.raises(expected) as raised:
            catalog.stats()
    finally:
        catalog.close()
    assert attempts == Counter({"catalog stats": 1})
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.postgres
def test_a_database_that_does_not_exist_fails_at_once_as_a_configuration_error(
    pg_admin: psycopg.Connection[tuple[object, ...]],
    connects: list[str],
    attempts: Counter[str],
) -> None:
    name = f"gst_missing_{uuid.uuid4().hex[:8]}"
    message = _fails_at_once(
        f"postgresql://postgres@127.0.0.1:5432/{name}", ConfigurationError, attempts
    )
    assert len(connects) == 1
    assert message == (
        f'catalog stats: check the catalog URL: PostgreSQL says database "{name}" does not exist'
    )


@pytest.mark.postgres
def test_a_role_that_does_not_exist_fails_at_once_as_an_auth_error(
    pg_admin: psycopg.Connection[tuple[object, ...]],
    connects: list[str],
    attempts: Counter[str],
) -> None:
    role = f"gst_nobody_{uuid.uuid4().hex[:8]}"
    message = _fails_at_once(f"postgresql://{role}@127.0.0.1:5432/test", AuthError, attempts)
    assert len(connects) == 1
    assert f'role "{role}" does not exist' in message


@pytest.mark.postgres
def test_a_role_that_may_not_log_in_fails_at_once_as_an_auth_error(
    pg_admin: psycopg.Connection[tuple[object, ...]],
    connects: list[str],
    attempts: Counter[str],
) -> None:
    role = f"gst_nologin_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        url = f"postgresql://{role}@127.0.0.1:5432/test"
        message = _fails_at_once(url, AuthError, attempts)
    finally:
        pg_admin.execute(f'DROP ROLE "{role}"')
    assert "is not permitted to log in" in message and len(connects) == 1


@pytest.mark.postgres
def test_a_role_without_create_on_the_database_fails_at_once_as_an_auth_error(
    pg_admin: psycopg.Connection[tuple[object, ...]], pg_schema: str, attempts: Counter[str]
) -> None:
    role = f"gst_weak_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        url = f"postgresql://{role}@127.0.0.1:5432/test?schema={pg_schema}"
        message = _fails_at_once(url, AuthError, attempts)
    finally:
        pg_admin.execute(f'DROP ROLE "{role}"')
    assert "permission denied" in message


@pytest.mark.postgres
def test_a_catalog_refused_later_fails_at_once_then_recovers_when_fixed(
    pg_admin: psycopg.Connection[tuple[object, ...]], pg_schema: str, connects: list[str]
) -> None:
    role = f"gst_later_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
    url = f"postgresql://{role}@127.0.0.1:5432/test?schema={pg_schema}&pool_min=0"
    catalog = PostgresCatalog(url, deadline=10)
    try:
        catalog.upsert_operation(op(1))
        pg_admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
        pg_admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        with pytest.raises((AuthError, BackendUnavailable)):
            catalog.stats()  # the pool's connection died: the next connect is refused
        before = len(connects)
        with pytest.raises(AuthError, match="not permitted to log in"):
            catalog.stats()
        assert len(connects) == before + 1  # refused once, and not retried
        pg_admin.execute(f'ALTER ROLE "{role}" LOGIN')
        assert catalog.get_operation(op(1).operation_id) == op(1)
    finally:
        catalog.close()
        pg_admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        pg_admin.execute(f'DROP OWNED BY "{role}"')
        pg_admin.execute(f'DROP ROLE "{role}"')
