"""The adapters come in one shape: ``genstore_adapters/<backend>/`` with ``hooks.py`` (the spec)
and ``blobs.py`` or ``catalog.py``, registered by entry point, sharing one options parser, one
SQLSTATE table and one backoff."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

import genstore_adapters
from genstore._plugins import backend_specs, catalog_specs
from genstore.plugin import BackendSpec, CatalogSpec

ROOT = Path(genstore_adapters.__file__).parent
BACKENDS = {"local", "fsspec", "s3", "supabase", "sqlite", "sidecar", "postgres"}
SHARED = {"__init__.py", "_options.py", "_retry.py", "_rows.py", "_sqlstate.py"}


def test_no_flat_modules_only_backend_packages_and_the_shared_three() -> None:
    assert {p.name for p in ROOT.glob("*.py")} == SHARED
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == BACKENDS


def test_every_backend_package_has_the_same_files() -> None:
    for name in BACKENDS:
        files = {p.name for p in (ROOT / name).glob("*.py")}
        assert {"__init__.py", "hooks.py"} <= files, name
        assert files & {"blobs.py", "catalog.py"}, name
        assert not any(f.startswith("_retry") or f.startswith("_options") for f in files), name


def test_entry_points_name_each_hooks_module() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="genstore")}
    assert {name: found.get(name) for name in BACKENDS} == {
        name: f"genstore_adapters.{name}.hooks" for name in BACKENDS
    }


def test_every_built_in_spec_lives_in_its_hooks_module_and_its_factory_imports() -> None:
    specs: list[BackendSpec | CatalogSpec] = [s for _, s in backend_specs().specs]
    specs += [s for _, s in catalog_specs().specs]
    built_in = [s for s in specs if s.name in BACKENDS]
    assert {s.name for s in built_in} == BACKENDS
    for spec in built_in:
        assert isinstance(spec.factory, str)
        module, _, attribute = spec.factory.partition(":")
        assert module.startswith(f"genstore_adapters.{spec.name}."), spec
        assert callable(getattr(import_module(module), attribute)), spec
