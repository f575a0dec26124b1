"""The RTMP package stays sans-I/O: none of its modules imports an I/O, clock, DB or network module."""

from __future__ import annotations

import ast
import pathlib

import pytest

import streamit.rtmp

PACKAGE = pathlib.Path(streamit.rtmp.__file__).resolve().parent
BANNED = {
    "asyncio",
    "socket",
    "ssl",
    "select",
    "selectors",
    "time",
    "threading",
    "sqlalchemy",
    "redis",
    "httpx",
}
BANNED_PREFIXES = ("http", "urllib", "aiosqlite", "asyncpg")


@pytest.mark.parametrize("module", sorted(PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_module_imports_nothing_that_does_io(module: pathlib.Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    offending = {name for name in imported if name in BANNED or name.startswith(BANNED_PREFIXES)}
    assert not offending, f"{module.name} imports {sorted(offending)}"
