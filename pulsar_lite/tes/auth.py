"""Who a TES request comes from: the TES face's own credentials, kept apart from the Pulsar routes' token.

* ``tes_token``: ``Authorization: Bearer <tes_token>`` is an administrator, who sees every task (clients such
  as cwl-tes send their ``--token`` this way, whatever it looks like: a JWT is compared as it is).
* ``tes_users_file``: ``Authorization: Basic`` users (``passwords.py``), each seeing only the tasks they
  created. The file is read again when it changes (``pulsar-lite tes-user add`` needs no restart); a file
  that cannot be read or has a wrong line lets no Basic user in until it is fixed (the log says why).
* Neither set: today's behaviour, kept for existing sites: the Pulsar face's own check (``private_token``,
  or no token at all) opens the TES routes as an administrator; a warning says so at start-up.

Secrets are compared in constant time. A verified Basic password is remembered for ``CACHE_SECONDS`` by a
keyed hash of it (HMAC-SHA256 under a key made at start-up and never written anywhere), never the password
itself, so that a client polling its tasks costs one PBKDF2 (0.14-0.2 s on the test host) a minute, not one
a request.
One password is checked at a time: wrong passwords sent in a flood take one core, not every one.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..errors import ConfigError
from . import passwords

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
CACHE_SIZE = 1024


@dataclass(frozen=True)
class Caller:
    """Who asks: a Basic user (``name``), or an administrator (``admin``, no name)."""
    name: str | None
    admin: bool = False


ADMIN = Caller(None, admin=True)


class TesAuth:
    def __init__(self, config, pulsar_authorized=None):
        """``pulsar_authorized(request)``: the Pulsar routes' own check, used only when neither ``tes_token``
        nor ``tes_users_file`` is set."""
        self.token = config.tes_token or None
        self.users_file = config.tes_users_file or None
        self.shared = self.token is None and self.users_file is None
        self._pulsar_authorized = pulsar_authorized
        self._token = self.token.encode("utf-8") if self.token else None
        self._private_token = config.private_token
        self._users: dict[str, str] = {}
        self._stamp = None
        self._users_lock = threading.Lock()
        if self.users_file:
            self._users = passwords.read_users(self.users_file)  # ConfigError at start-up, naming the line
            self._stamp = _stamp(self.users_file)
        self._cache: OrderedDict[bytes, tuple[float, str, str]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_key = secrets.token_bytes(32)
        self._checking = threading.Lock()  # one PBKDF2 at a time
        # what an unknown user's password is checked against, so that a wrong name costs what a wrong password does
        self._nobody = (f"{passwords.ALGORITHM}${passwords.DEFAULT_ITERATIONS}$"
                        f"{base64.b64encode(secrets.token_bytes(16)).decode()}$"
                        f"{base64.b64encode(secrets.token_bytes(32)).decode()}")

    # -- start-up ----------------------------------------------------------------------------------------------
    def announce(self) -> None:
        """Say at start-up who may use the TES routes, warning of what an operator may not expect."""
        if self.shared and self._private_token:
            log.warning("TES: neither tes_token nor tes_users_file is set: the Pulsar routes' private_token opens "
                        "the TES routes too, with every task visible (set tes_token and/or tes_users_file to "
                        "keep them apart: docs/tes.md)")
        elif self.shared:
            log.warning("TES: no token at all: anyone who can reach this port can run TES tasks")
        else:
            if self.token and self._private_token and self.token == self._private_token:
                log.warning("TES: tes_token is the same as private_token: the Pulsar token opens TES as well")
            log.info("TES: %s%s%s; the Pulsar private_token does not open the TES routes",
                     "tes_token (an administrator)" if self.token else "",
                     " and " if self.token and self.users_file else "",
                     f"{len(self._users)} Basic user(s) from {self.users_file}" if self.users_file else "")
            if not self.token and not self._users:
                log.warning("TES: tes_users_file %s lists nobody and there is no tes_token: nobody can use TES "
                            "until a user is added (pulsar-lite tes-user add)", self.users_file)

    # -- requests ----------------------------------------------------------------------------------------------
    def caller(self, request) -> Caller | None:
        """Who sent ``request``; None when its credentials open nothing here."""
        if self.shared:
            return ADMIN if self._pulsar_authorized is None or self._pulsar_authorized(request) else None
        scheme, _, credentials = request.environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "bearer" and self._token is not None:
            return ADMIN if hmac.compare_digest(credentials.encode("utf-8", "replace"), self._token) else None
        if scheme == "basic" and self.users_file:
            return self._basic(credentials)
        return None

    def challenges(self) -> list[tuple[str, str]]:
        """``WWW-Authenticate`` headers of a 401."""
        headers = []
        if self.shared or self.token:
            headers.append(("WWW-Authenticate", 'Bearer realm="pulsar_lite TES"'))
        if self.users_file:
            headers.append(("WWW-Authenticate", 'Basic realm="pulsar_lite TES", charset="UTF-8"'))
        return headers

    def _basic(self, credentials: str) -> Caller | None:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        name, colon, password = decoded.partition(":")
        if not colon or not name:
            return None
        users = self.users()
        encoded = users.get(name)
        key = hmac.new(self._cache_key, name.encode() + b"\0" + password.encode("utf-8", "replace"),
                       hashlib.sha256).digest()
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now and encoded is not None and hmac.compare_digest(hit[2], encoded):
            return Caller(name)
        with self._checking:
            good = passwords.verify_password(password, encoded if encoded is not None else self._nobody)
        if not good or encoded is None:
            log.info("TES: Basic credentials of %r refused", name if passwords.valid_name(name) else "?")
            return None
        with self._cache_lock:
            self._cache[key] = (now + CACHE_SECONDS, name, encoded)
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return Caller(name)

    def users(self) -> dict[str, str]:
        """The users file's {name: hash}, read again when the file changed; {} while it cannot be read."""
        stamp = _stamp(self.users_file)
        if stamp == self._stamp:
            return self._users
        with self._users_lock:
            if stamp != self._stamp:
                try:
                    self._users = passwords.read_users(self.users_file)
                    log.info("TES: %s read again: %d user(s)", self.users_file, len(self._users))
                except ConfigError as exc:
                    self._users = {}
                    log.error("TES: no Basic user is let in until this is fixed: %s", exc)
                self._stamp = stamp
        return self._users


def _stamp(path: str):
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def check(config) -> None:
    """ConfigError now, before anything starts, when the TES face's access options are wrong."""
    if not config.tes:
        return
    TesAuth(config)
    from .cors import Cors

    Cors(config.tes_cors_origins)
