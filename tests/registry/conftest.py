"""Real servers for the registry's integration tests, each a child process on a free loopback port.

* ``sqlite_server``, ``postgresql_server``: ``lmforge mlflow-server`` (the user's command) over a fresh SQLite
  file, and over a throwaway PostgreSQL cluster (``initdb``/``pg_ctl`` in a temp dir, as the ``postgres``
  user when the tests run as root: PostgreSQL refuses root).
* ``mlflow_server_factory``: starts one more (the auth tests add ``--auth``).
* ``tracking_at``: points lmforge at a server, as a given user, for one test.

Missing PostgreSQL skips the PostgreSQL tests with the command that installs it (``infra/system-deps.sh``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest

from lmforge.serve.engine import log_tail, stop_process_group

START_TIMEOUT_S = 420  # `mlflow server` starts in ~10 s on an idle machine, minutes on 2 busy cores
INSTALL_HINT = "run infra/system-deps.sh (make test does) to install it"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``lmforge mlflow-server ARGS`` in its own process group; ready once ``/health`` answers."""

    def __init__(self, workdir: Path, backend_uri: str, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_uri = backend_uri
        self.log = workdir / f"mlflow-server-{self.port}.log"
        self.argv = [sys.executable, "-m", "lmforge.cli", "mlflow-server", "--port", str(self.port),
                     "--backend", backend_uri, "--artifacts", str(workdir / "artifacts"), *args]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {self.proc.returncode}:\n{log_tail(self.log)}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(1)
        self.stop()
        pytest.fail(f"mlflow server not up after {START_TIMEOUT_S} s:\n{log_tail(self.log)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process_group(self.proc.pid)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def mlflow_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerProcess]]:
    """``start(backend_uri, *cli_args, env=None)`` -> a running server; all are stopped at the end."""
    started: list[ServerProcess] = []

    def start(backend_uri: str | None = None, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
        workdir = tmp_path_factory.mktemp("mlflow-server")
        server = ServerProcess(workdir, backend_uri or f"sqlite:///{workdir / 'mlflow.db'}", *args, env=env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_server(mlflow_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return mlflow_server_factory()


@pytest.fixture(scope="session")
def postgresql_server(mlflow_server_factory: Callable[..., ServerProcess],
                      postgres_cluster: PostgresCluster) -> ServerProcess:
    return mlflow_server_factory(postgres_cluster.create_database("mlflow"))


@pytest.fixture
def tracking_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``tracking_at(server, user=None, password=None)``: lmforge talks to ``server`` for this test."""
    previous = mlflow.get_tracking_uri()

    def point(server: ServerProcess, user: str | None = None, password: str | None = None) -> None:
        monkeypatch.setenv("LMFORGE_MLFLOW_URI", server.url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        for name, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)

    yield point
    mlflow.set_tracking_uri(previous)  # the next test's MlflowClient() must not reach a stopped server


class PostgresCluster:
    """A throwaway cluster: its own data dir and port, password auth over TCP on 127.0.0.1 only."""

    user = "lmforge"

    def __init__(self, bindir: Path, root: Path, run_as: list[str]):
        self.bindir, self.root, self.run_as = bindir, root, run_as
        self.data = root / "data"
        self.port = free_port()
        self.password = secrets.token_hex(12)

    def start(self) -> PostgresCluster:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._pg("initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "-E", "UTF8",
                 "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        pwfile.unlink()
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                   "-c fsync=off -c full_page_writes=off")  # throwaway: durability buys nothing here
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "180",
                 "-o", options, "start")
        return self

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URI (psycopg2, MLflow's default driver)."""
        psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2-binary (dev extra) is not installed")
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def _pg(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self.run_as, str(self.bindir / tool), *args], capture_output=True, text=True,
                                cwd=self.root, timeout=300)
        if result.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr or result.stdout}"
                               + (f"\n{log.read_text()[-2000:]}" if log.exists() else ""))


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip(f"PostgreSQL is not installed (no initdb/pg_ctl): {INSTALL_HINT}")
    root = Path(tempfile.mkdtemp(prefix="lmforge-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: hand the directory to its system user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip(f"as root, PostgreSQL needs its `postgres` system user: {INSTALL_HINT}")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    cluster = PostgresCluster(bindir, root, run_as)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl live: on PATH, else Debian's /usr/lib/postgresql/<major>/bin (newest)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None
