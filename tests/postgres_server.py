"""A throw-away PostgreSQL server on loopback for the distributed-mode tests.

Uses the Debian `postgresql` package (installed with apt-get if missing, as `make bench`
does for wrk), runs as the `postgres` user when the tests run as root, and is removed
when the context exits.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True)
    return _binary(name)


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    port: int

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        subprocess.run(
            _as_postgres(
                [
                    _binary("psql"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-c",
                    f"CREATE DATABASE {name}",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="loopml-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        _as_postgres([_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    process = subprocess.Popen(
        _as_postgres(
            [
                _binary("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(root),
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=open(root / "server.log", "wb"),
    )
    try:
        deadline = time.time() + 60
        while (
            subprocess.run([_binary("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode
            != 0
        ):
            if time.time() > deadline or process.poll() is not None:
                raise RuntimeError(f"PostgreSQL did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield PostgresServer(port)
    finally:
        # PostgreSQL's fast shutdown (clients still connected do not hold it up), through
        # pg_ctl: `runuser` does not pass a SIGINT on to the server
        subprocess.run(
            _as_postgres([_binary("pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "30"]),
            capture_output=True,
            timeout=60,
        )
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
