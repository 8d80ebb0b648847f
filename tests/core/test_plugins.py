"""Plugin loading and the spec registry: built-ins register through entry points as a third party
would; routing, `genstore plugins` and install hints read the same specs; one broken plugin
breaks nothing."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import genstore
import pytest
from genstore import _plugins, hookspecs
from genstore._cli._extras import _declared_schemes
from genstore._url import parse_url
from genstore.plugin import BackendSpec, CatalogSpec

BUILT_INS = {"local", "fsspec", "s3", "supabase", "sqlite", "sidecar", "postgres"}


class _BrokenEntryPoint:
    name = "broken"

    def load(self) -> Any:
        raise ImportError("this plugin's dependency is missing")


class _BrokenSpecs:
    @genstore.hookimpl
    def genstore_backends(self) -> list[BackendSpec]:
        raise RuntimeError("cannot declare")


@pytest.fixture
def fresh_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin manager rebuilt from scratch, restored afterwards."""
    monkeypatch.setattr(_plugins, "_manager", None)
    monkeypatch.setattr(_plugins, "_load_errors", {})


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path for factory modules written by the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _register(name: str, *specs: BackendSpec | CatalogSpec) -> None:
    class Plugin:
        @genstore.hookimpl
        def genstore_backends(self) -> list[BackendSpec]:
            return [s for s in specs if isinstance(s, BackendSpec)]

        @genstore.hookimpl
        def genstore_catalogs(self) -> list[CatalogSpec]:
            return [s for s in specs if isinstance(s, CatalogSpec)]

    genstore.register_plugin(Plugin(), name=name)


def test_builtins_are_registered_through_entry_points(fresh_manager: None) -> None:
    names = {name for name, _ in _plugins.get_plugin_manager().list_name_plugin()}
    assert names >= BUILT_INS
    declared = {name for name, _ in _plugins.backend_specs().specs + _plugins.catalog_specs().specs}
    assert declared == BUILT_INS


def test_a_broken_plugin_does_not_stop_the_others(
    fresh_manager: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = _plugins.entry_points

    def with_broken(group: str) -> list[Any]:
        return [_BrokenEntryPoint(), *real(group=group)]

    monkeypatch.setattr(_plugins, "entry_points", with_broken)
    with genstore.open_store(tmp_path) as store:
        store.save_complete_operation(operation_type="t")
    assert "broken" in _plugins.plugin_load_errors()
    with pytest.raises(genstore.ConfigurationError, match="broken"):
        genstore.open_store("nosuch://x")


def test_a_plugin_whose_hook_fails_is_reported_and_skipped(tmp_path: Path) -> None:
    genstore.register_plugin(_BrokenSpecs(), name="test-broken-specs")
    try:
        with genstore.open_store(tmp_path) as store:
            store.save_complete_operation(operation_type="t")
        rows, failed = _declared_schemes()
        assert "cannot declare" in failed["test-broken-specs"]
        assert {row["scheme"] for row in rows} >= {"file", "s3", "s3a", "postgres", "sqlite"}
        with pytest.raises(genstore.ConfigurationError, match="test-broken-specs"):
            genstore.open_store("nosuch://x")
    finally:
        _plugins.unregister_plugin("test-broken-specs")


def test_every_hook_has_a_docstring_saying_when_and_what() -> None:
    hooks = {n: getattr(hookspecs, n) for n in dir(hookspecs) if n.startswith("genstore_")}
    assert set(hooks) == {
        "genstore_backends",
        "genstore_catalogs",
        "genstore_before_save",
        "genstore_after_save",
        "genstore_extract_results",
    }
    for hook in hooks.values():
        assert hook.__doc__ and hook.__doc__.startswith("Called ")


def test_routing_and_the_listing_read_the_same_specs() -> None:
    """Every scheme `genstore plugins` lists is routed to the plugin it names (no drift)."""
    rows, _ = _declared_schemes()
    backends = _plugins.backend_specs()
    for row in rows:
        if row["kind"] == "backend" and not row["scheme"].startswith("<"):
            assert _plugins.backend_candidates(row["scheme"], backends)[0].name == row["plugin"]
    listed = {(row["scheme"], row["kind"]) for row in rows}
    assert {("s3a", "backend"), ("postgres", "catalog"), ("local", "backend")} <= listed


def test_a_factory_is_imported_only_when_its_scheme_is_opened(plugin_dir: Path) -> None:
    (plugin_dir / "lazy_vault.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from genstore_adapters.local.blobs import LocalBlobStore

            def open_vault(url):
                return LocalBlobStore(Path({str(plugin_dir / "vault")!r}) / url.location)
            """
        )
    )
    spec = BackendSpec(
        name="lazy", schemes=("vault",), description="d", factory="lazy_vault:open_vault"
    )
    _register("test-lazy", spec)
    try:
        _declared_schemes()
        _plugins.backend_specs()
        assert "lazy_vault" not in sys.modules
        with genstore.open_store("vault://here", catalog="sidecar") as store:
            store.save_complete_operation(operation_type="t", prompt="third party")
            assert store.history().items[0].prompt == "third party"
        assert "lazy_vault" in sys.modules
        assert (plugin_dir / "vault" / "here" / "operations").is_dir()
    finally:
        _plugins.unregister_plugin("test-lazy")
        sys.modules.pop("lazy_vault", None)


def test_a_missing_library_names_the_specs_extra(plugin_dir: Path) -> None:
    (plugin_dir / "needs_lib.py").write_text("import genstore_no_such_library_xyz\n")
    backend = BackendSpec(
        name="needy", schemes=("needy",), description="d", factory="needs_lib:f", extra="needy"
    )
    catalog = CatalogSpec(
        name="needy", schemes=("needycat",), description="d", factory="needs_lib:f", extra="x"
    )
    _register("test-needy", backend, catalog)
    try:
        with pytest.raises(genstore.MissingDependency, match=r"genstore\[needy\]") as info:
            genstore.open_store("needy://x")
        assert info.value.package == "genstore_no_such_library_xyz"
        with pytest.raises(genstore.MissingDependency, match=r"genstore\[x\]"):
            genstore.open_store(plugin_dir / "store", catalog="needycat://y")
    finally:
        _plugins.unregister_plugin("test-needy")


def test_a_broken_factory_path_is_a_configuration_error(plugin_dir: Path) -> None:
    (plugin_dir / "not_callable.py").write_text("f = 3\n")
    _register(
        "test-bad-path",
        BackendSpec(name="a", schemes=("gone",), description="d", factory="no_such_mod:f"),
        BackendSpec(name="b", schemes=("three",), description="d", factory="not_callable:f"),
        BackendSpec(name="c", schemes=("nocolon",), description="d", factory="not_callable"),
    )
    try:
        for scheme in ("gone", "three", "nocolon"):
            with pytest.raises(genstore.ConfigurationError) as info:
                genstore.open_store(f"{scheme}://x")
            assert not isinstance(info.value, genstore.MissingDependency)
    finally:
        _plugins.unregister_plugin("test-bad-path")


def test_a_declared_scheme_wins_over_the_catch_all() -> None:
    backends = _plugins.backend_specs()
    assert _plugins.backend_candidates("s3", backends)[0].name == "s3"
    assert [s.name for s in _plugins.backend_candidates("memory", backends)] == ["fsspec"]
    with genstore.open_store("memory://catch-all?catalog=sidecar") as store:
        assert type(store.blobs).__name__ == "FsspecBlobStore"
    with pytest.raises(genstore.ConfigurationError, match=r"known: .*s3a"):
        _plugins.open_backend(parse_url("nosuch://x"))


def test_a_factory_returning_the_wrong_type_is_refused() -> None:
    _register(
        "test-wrong",
        BackendSpec(
            name="w",
            schemes=("wrong",),
            description="d",
            factory=lambda url: object(),  # type: ignore[arg-type,return-value]
        ),
    )
    try:
        with pytest.raises(genstore.ConfigurationError, match="BlobStore"):
            genstore.open_store("wrong://x")
    finally:
        _plugins.unregister_plugin("test-wrong")
