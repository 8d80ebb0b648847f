"""Sessions for genstore. They run in the project environment that ``uv sync --frozen`` built from
uv.lock (``uv run --frozen --all-extras nox -s NAME``), so every session uses exactly the locked
versions and nothing is resolved twice."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "none"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (PostgreSQL, moto and uvicorn tests included)."""
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check packages, tests, examples and benchmarks with mypy --strict."""
    session.run("mypy")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks and write bench/RESULTS.md (slow; pass --quick for a smoke run)."""
    session.run("python", "bench/run_all.py", *session.posargs)


@nox.session(default=False)
def e2e(session: nox.Session) -> None:
    """Run the 10-route generation service demo end to end on loopback."""
    session.run("python", "examples/generation_service.py", "--demo")
