"""The real FTP server of the FTP tests: vsftpd on 127.0.0.1 (scripts/ci/ftp-up.sh), FTP with AUTH TLS on
one port, implicit FTPS on another, one login chrooted to a directory of this host.

``ftp_area`` (a fixture: tests/conftest.py loads this module as a plugin) is a fresh directory of the server's tree for one test, owned by the FTP login,
removed afterwards: the test writes inputs there directly and reads what arrives there."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import uuid
from pathlib import Path

import pytest

from tests.conftest import need

ENV_FILE = Path("/etc/pulsar-lite-ci/ftp.env")


def settings() -> dict | None:
    """The server's settings (ftp-up.sh writes them), or None when it is not set up and answering here."""
    try:
        values = dict(line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line)
    except OSError:
        return None
    for port in (values.get("FTP_PORT"), values.get("FTPS_PORT")):
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
        except (OSError, TypeError, ValueError):
            return None
    return values


class Area:
    def __init__(self, values: dict):
        self.user, self.password = values["FTP_USER"], values["FTP_PASSWORD"]
        self.ca, self.port = values["FTP_CA"], int(values["FTP_PORT"])
        self.name = f"t-{uuid.uuid4().hex[:12]}"
        self.path = Path(values["FTP_ROOT"]) / self.name  # on this host
        self.url = f"ftp://{self.user}:{self.password}@127.0.0.1:{values['FTP_PORT']}/{self.name}"
        self.ftps_url = f"ftps://{self.user}:{self.password}@127.0.0.1:{values['FTPS_PORT']}/{self.name}"
        owner = pwd.getpwnam(self.user)
        self.uid, self.gid = owner.pw_uid, owner.pw_gid
        self.path.mkdir()
        os.chown(self.path, self.uid, self.gid)

    def put(self, relative: str, data: bytes) -> Path:
        """A file on the server, its directories made, all readable and writable by the FTP login."""
        target = self.path / relative
        for parent in reversed(target.relative_to(self.path).parents):
            directory = self.path / parent
            directory.mkdir(exist_ok=True)
            os.chown(directory, self.uid, self.gid)
        target.write_bytes(data)
        os.chown(target, self.uid, self.gid)
        return target


@pytest.fixture
def ftp_area():
    values = settings()
    need(values is not None and os.geteuid() == 0,
         "the FTP server is not set up here, or its settings are not readable (as root: bash scripts/ci/ftp-up.sh)")
    area = Area(values)
    yield area
    shutil.rmtree(area.path, ignore_errors=True)
