"""The TES users file (``tes_users_file``): one ``name:hash`` line per HTTP Basic user.

A hash is ``pbkdf2_sha256$<iterations>$<salt, base64>$<derived key, base64>`` (PBKDF2-HMAC-SHA256, a random
16-byte salt, a 32-byte key), which the standard library makes and checks: no extra package on the daemon's
host, and the file can be written by ``pulsar-lite tes-user add`` or by hand with a few lines of Python.
Blank lines and lines starting with ``#`` are ignored. The plain password is never kept anywhere.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets

from ..errors import ConfigError

ALGORITHM = "pbkdf2_sha256"
#: OWASP's 2023 figure for PBKDF2-HMAC-SHA256: about 0.2 s on one core of the 2-core test host
DEFAULT_ITERATIONS = 600_000
MIN_ITERATIONS = 1_000
MAX_ITERATIONS = 50_000_000
SALT_BYTES = 16
KEY_BYTES = 32
#: a user name: what HTTP Basic can carry (no ':') and a log line can show as it is
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def valid_name(name: str) -> bool:
    return bool(NAME.fullmatch(name))


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """The hash of ``password`` as the users file holds it."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, KEY_BYTES)
    return f"{ALGORITHM}${iterations}${_b64(salt)}${_b64(key)}"


def check_hash(encoded: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, key) of a hash; ValueError saying what is wrong with it."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != ALGORITHM:
        raise ValueError(f"not a {ALGORITHM}$<iterations>$<salt>$<hash> hash")
    if not (parts[1].isascii() and parts[1].isdigit()) or not MIN_ITERATIONS <= int(parts[1]) <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be a number between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
    try:
        salt, key = base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the salt or the hash is not base64") from None
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("the salt or the hash is too short")
    return int(parts[1]), salt, key


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` is the one ``encoded`` was made from (the keys compared in constant time)."""
    try:
        iterations, salt, key = check_hash(encoded)
    except ValueError:
        return False
    try:
        secret = password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, len(key)), key)


def parse_users(text: str, where: str = "the users file") -> dict[str, str]:
    """{name: hash} of a users file's text; ConfigError naming the line that is wrong."""
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, encoded = line.partition(":")
        if not colon or not valid_name(name):
            raise ConfigError(f"{where} line {number}: expected NAME:HASH with a name of letters, digits and "
                              f"._@+- (at most 64)")
        try:
            check_hash(encoded)
        except ValueError as exc:
            raise ConfigError(f"{where} line {number} (user {name}): {exc}") from None
        if name in users:
            raise ConfigError(f"{where} line {number}: user {name} is listed twice")
        users[name] = encoded
    return users


def read_users(path: str) -> dict[str, str]:
    """{name: hash} of the users file at ``path``; ConfigError when it cannot be read or a line is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"tes_users_file {path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"tes_users_file {path}: not UTF-8 text") from None
    return parse_users(text, f"tes_users_file {path}")


def write_user(path: str, name: str, encoded: str | None) -> bool:
    """Set (``encoded``) or remove (None) the line of ``name`` in the users file at ``path``, created with
    mode 0600 when missing, replaced in one rename; other lines (comments too) are kept as they are.
    Whether the user was there before."""
    lines: list[str] = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        parse_users("\n".join(lines), path)  # a broken file is not made worse
    kept = [line for line in lines if line.strip().partition(":")[0] != name or line.lstrip().startswith("#")]
    existed = len(kept) != len(lines)
    if encoded is not None:
        kept.append(f"{name}:{encoded}")
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o600
    temporary = f"{path}.{secrets.token_hex(4)}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in kept))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return existed


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
