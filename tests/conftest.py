"""A real Redis server on loopback for the AttributeCache tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

_INSTALL = (
    "redis-server is not installed, so the Redis AttributeCache tests are skipped; "
    "install it with `apt-get install redis-server` (Debian/Ubuntu). CI installs it."
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """Yield the URL of a Redis server on loopback: CI's, or one started here."""
    started_by_ci = os.environ.get("SEGMENT_BRAZE_TEST_REDIS_URL")
    if started_by_ci:
        yield started_by_ci
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(_INSTALL)
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    command = [
        binary,
        *("--port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
    ]
    log_path = workdir / "redis.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        deadline = time.monotonic() + 10
        while not _answers_ping(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port}:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
