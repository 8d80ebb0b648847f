"""Plugin loading: built-ins register through entry points; one broken plugin breaks nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import genstore
import pytest
from genstore import _plugins, hookspecs


class _BrokenEntryPoint:
    name = "broken"

    def load(self) -> Any:
        raise ImportError("this plugin's dependency is missing")


@pytest.fixture
def fresh_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin manager rebuilt from scratch, restored afterwards."""
    monkeypatch.setattr(_plugins, "_manager", None)
    monkeypatch.setattr(_plugins, "_load_errors", {})


def test_builtins_are_registered_through_entry_points(fresh_manager: None) -> None:
    names = {name for name, _ in _plugins.get_plugin_manager().list_name_plugin()}
    assert {"local", "fsspec", "sqlite", "sidecar"} <= names


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


def test_every_hook_has_a_docstring_saying_when_and_what() -> None:
    hooks = [getattr(hookspecs, n) for n in dir(hookspecs) if n.startswith("genstore_")]
    assert len(hooks) == 6
    for hook in hooks:
        assert hook.__doc__ and hook.__doc__.startswith("Called ")


def test_a_third_party_backend_plugs_in_by_scheme(tmp_path: Path) -> None:
    from genstore_adapters.local import LocalBlobStore

    class Plugin:
        @genstore.hookimpl
        def genstore_open_backend(self, url: Any) -> Any:
            if url.scheme == "mine":
                return LocalBlobStore(tmp_path / url.location)
            return None

    genstore.register_plugin(Plugin(), name="test-mine")
    try:
        with genstore.open_store("mine://here", catalog="sidecar") as store:
            store.save_complete_operation(operation_type="t", prompt="third party")
            assert store.history().items[0].prompt == "third party"
        assert (tmp_path / "here" / "operations").is_dir()
    finally:
        _plugins.unregister_plugin("test-mine")
