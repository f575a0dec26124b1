"""The protocol packages are sans-I/O: they import no asyncio, socket, clock, DB, Redis or HTTP module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "streamit"
SANS_IO_PACKAGES = ["rtmp", "flv", "mpegts", "fmp4", "hls", "media"]
BANNED = {
    "asyncio",
    "socket",
    "selectors",
    "time",
    "threading",
    "subprocess",
    "ssl",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "redis",
    "httpx",
    "starlette",
    "fastapi",
    "uvicorn",
    "requests",
    "streamit.servers",
    "streamit.db",
    "streamit.api",
    "streamit.origin",
    "streamit.edge",
    "streamit.discovery",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def banned_in(names: set[str]) -> set[str]:
    return {n for n in names if any(n == b or n.startswith(b + ".") for b in BANNED)}


SANS_IO_MODULES = ["edge/cache.py"]


@pytest.mark.parametrize("package", SANS_IO_PACKAGES)
def test_protocol_package_is_sans_io(package: str) -> None:
    for path in sorted((SRC / package).rglob("*.py")):
        assert not banned_in(imported_modules(path)), f"{path.relative_to(SRC)} imports I/O modules"


@pytest.mark.parametrize("module", SANS_IO_MODULES)
def test_pure_module_is_sans_io(module: str) -> None:
    assert (SRC / module).is_file()
    assert not banned_in(imported_modules(SRC / module)), f"{module} imports I/O modules"


def test_the_check_catches_io_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nfrom time import monotonic\nfrom fractions import Fraction\n")
    assert banned_in(imported_modules(sample)) == {"asyncio", "time"}
