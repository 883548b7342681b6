"""A private PostgreSQL cluster (initdb into a temporary directory, a free port) that a test
may stop and start at will, never touching the shared server on 5432.

initdb and postgres refuse to run as root: as root, the cluster runs as the ``postgres`` user.
Skips with the reason when the binaries or that user are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PgCluster:
    def __init__(self, bin_dir: Path, root: Path, port: int, user: str | None) -> None:
        self.bin_dir = bin_dir
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = port
        self.user = user  # run the binaries as this OS user (None: as ourselves)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


def _start_on_a_free_port(cluster: PgCluster, attempts: int = 3) -> None:
    """Start the cluster; a port taken between picking and binding it gets a new one."""
    for attempt in range(attempts):
        try:
            cluster.start()
            return
        except subprocess.CalledProcessError:
            log = cluster.log.read_text(errors="replace") if cluster.log.exists() else ""
            if attempt == attempts - 1 or "already in use" not in log.lower():
                raise
            cluster.port = free_port()


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    user: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run initdb as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser to start PostgreSQL as postgres")
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="sr-pg-"))
    if user:
        shutil.chown(root, user)
    cluster = PgCluster(bin_dir, root, free_port(), user)
    try:
        cluster.init()
        _start_on_a_free_port(cluster)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"cannot start a private PostgreSQL: {exc.stderr.decode()[-500:]}")
    try:
        yield cluster
    finally:
        if cluster.running():
            try:
                cluster.stop("immediate")
            except subprocess.CalledProcessError:
                time.sleep(1)
        shutil.rmtree(root, ignore_errors=True)
