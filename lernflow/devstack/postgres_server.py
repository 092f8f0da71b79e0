"""The stack's PostgreSQL server: Debian's packages, initialised in the stack dir."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from lernflow.config import Settings
from lernflow.devstack.base import Reporter, Server, StackError
from lernflow.devstack.secure import stack_pki
from lernflow.kernel.clients import postgres_connect


class PostgresServer(Server):
    """PostgreSQL from Debian's packages (Sunbird's ``job_request`` table for the reports).

    The cluster is initialised on first start in the data dir (scram-sha-256, the configured
    user and password), listens on 127.0.0.1 only, without a Unix socket. PostgreSQL refuses
    to run as root, so when the stack runs as root the server runs as the ``postgres`` user.
    """

    name = "postgres"

    def __init__(self, settings: Settings, report: Reporter) -> None:
        super().__init__(settings, report)
        self.port = settings.postgres.port

    def _bin(self) -> Path:
        found = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/postgres"),
            key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        )
        if found:
            return found[-1].parent
        binary = shutil.which("postgres")
        if binary:
            return Path(binary).parent
        msg = "PostgreSQL is missing. Fix: 'apt-get install postgresql' (make setup does it)."
        raise StackError(msg)

    def _as_owner(self, cmd: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return cmd
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", "postgres", "--", *cmd]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in [path, *path.rglob("*")]:
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def prepare(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.settings.stack.secure:
            self._require_tls()

    def _require_tls(self) -> None:
        """``--secure``: the server's certificate and key in the data dir (owned by the server's
        user, 0600, as PostgreSQL insists) and a pg_hba.conf admitting TLS connections only."""
        pki = stack_pki(self.settings)
        for source, name in ((pki.server_cert, "server.crt"), (pki.server_key, "server.key")):
            target = self.data_dir / name
            target.write_bytes(source.read_bytes())
            target.chmod(0o600)
        (self.data_dir / "pg_hba.conf").write_text(
            "# lernflow stack up --secure: TLS and scram-sha-256 only\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        )
        self._chown(self.data_dir)

    def _initdb(self) -> None:
        pg = self.settings.postgres
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._chown(self.data_dir)
        pwfile = self.home / ".pwfile"
        pwfile.write_text(pg.password.get_secret_value() + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        self.report(f"{self.name}: initialising the cluster in {self.data_dir} (first start only)")
        proc = subprocess.run(
            self._as_owner([
                str(self._bin() / "initdb"), "-D", str(self.data_dir), "-U", pg.user,
                "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8",
            ]),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr)[-2000:]
            hint = ""
            if "Permission denied" in out:
                hint = (
                    f"\nFix: the postgres user cannot reach {self.data_dir}; put "
                    "LERNFLOW_STACK_DIR under directories others can traverse (mode 755)."
                )
            msg = f"initdb failed:\n{out}{hint}"
            raise StackError(msg)

    def command(self) -> list[str]:
        return self._as_owner([
            str(self._bin() / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "fsync=on", "-c", "max_connections=50", *self._tls_options(),
        ])  # fmt: skip

    def _tls_options(self) -> list[str]:
        if not self.settings.stack.secure:
            return []
        return ["-c", "ssl=on", "-c", "ssl_min_protocol_version=TLSv1.2"]

    def ready(self) -> bool:
        pg = self.settings.postgres.model_copy(update={"host": "127.0.0.1", "port": self.port})
        with postgres_connect(pg, database="postgres") as conn:
            return bool(conn.execute("SELECT 1").fetchone() == (1,))

    def hints(self, log: str) -> str:
        if "could not bind" in log or "Address already in use" in log:
            return f"port {self.port} is taken (another PostgreSQL?): stop it or set LERNFLOW_POSTGRES_PORT."
        return super().hints(log)
