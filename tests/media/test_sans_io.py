"""The media and flv packages stay sans-I/O: no networking, clocks, databases or HTTP imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "streamit"
BANNED = {
    "aiosqlite",
    "asyncio",
    "asyncpg",
    "fastapi",
    "http",
    "httpx",
    "redis",
    "select",
    "selectors",
    "socket",
    "sqlalchemy",
    "ssl",
    "starlette",
    "subprocess",
    "threading",
    "time",
    "urllib",
    "uvicorn",
}
MODULES = sorted(path for package in ("media", "flv") for path in (SRC / package).glob("*.py"))


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_packages_have_modules() -> None:
    assert {path.name for path in MODULES} >= {"h264.py", "aac.py", "stream.py", "demuxer.py", "file.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_io_imports(path: Path) -> None:
    assert imported_roots(path) & BANNED == set()
