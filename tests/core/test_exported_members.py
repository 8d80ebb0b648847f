"""The public API is exactly what genstore.__all__ names (a change here is an API change)."""

from __future__ import annotations

import genstore


def test_exported_members() -> None:
    exported = {name for name in dir(genstore) if not name.startswith("_")}
    # Submodules that become attributes on import are not part of __all__.
    modules = {"exceptions", "hookspecs", "plugin", "cli", "testing"}
    assert exported - modules == set(genstore.__all__)
    assert len(set(genstore.__all__)) == len(genstore.__all__)
