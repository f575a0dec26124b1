"""Running Debian's nginx with libnginx-mod-rtmp for interop tests."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI, require_tool
from tests.interop.conftest import wait_for

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


def require_nginx_rtmp() -> str:
    """The nginx binary; skip (fail under CI) when nginx or its RTMP module is missing."""
    binary = require_tool("nginx")
    if not RTMP_MODULE.exists():
        message = f"{RTMP_MODULE} is missing (Debian package libnginx-mod-rtmp)"
        if IN_CI:
            pytest.fail(message + "; under CI it must be present")
        pytest.skip(message)
    return binary


def main_context(root: Path) -> str:
    """The top of an nginx.conf that loads the RTMP module and runs in the foreground under ``root``."""
    # Running as root, workers would switch to "nobody", which cannot enter pytest's private tmp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""
load_module {RTMP_MODULE};
{user}daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events {{ worker_connections 64; }}
"""


def accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_nginx(root: Path, config: str, ports: list[int]) -> subprocess.Popen[bytes]:
    """Write ``config`` under ``root`` and start nginx; fail with its logs unless all ``ports`` answer."""
    binary = require_nginx_rtmp()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(config)
    with (root / "logs" / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [binary, "-c", str(conf), "-p", f"{root}/", "-e", str(root / "logs" / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
    started = wait_for(
        lambda: all(accepts_connections(port) for port in ports) or process.poll() is not None, 10
    )
    if not started or process.poll() is not None:
        stop_nginx(process)
        logs = root / "logs"
        pytest.fail(
            f"nginx did not start:\n{(logs / 'stderr.log').read_text()}\n"
            f"{(logs / 'error.log').read_text(errors='replace') if (logs / 'error.log').exists() else ''}"
        )
    return process


def stop_nginx(process: subprocess.Popen[bytes]) -> None:
    """Stop nginx (TERM, then KILL after 10 s)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
