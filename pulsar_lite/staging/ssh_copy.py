"""``remote_rsync_transfer`` and ``remote_scp_transfer`` (Pulsar's actions): the daemon pulls a job's inputs
from, and pushes its outputs to, the Galaxy host over ssh with the key, user, host and port Galaxy's action
mapper sends (``ssh_key``, ``ssh_user``, ``ssh_host``, ``ssh_port``).

Differences from Pulsar, all on the safe side:
* The host key is checked (``StrictHostKeyChecking=yes``) against the operator's ``ssh_known_hosts`` file (or
  ssh's own); Pulsar turned checking off. ``ssh_strict_host_key_checking: false`` is ``accept-new`` (a host
  not seen before is trusted once and remembered; a changed key is still refused), said in the log.
* The key is written to a file of the daemon's (mode 0600, in a 0700 directory) for the one command and
  removed right after, whatever happens; ``BatchMode`` (never a prompt), ``IdentitiesOnly``, time limits.
* rsync keeps an interrupted download in ``.rsync-partial/`` beside its target and resumes from it on the
  next try (``--partial-dir``); the target appears only whole (rsync renames it into place).
* An output is read through the descriptor the daemon opened below the job directory (``/proc/self/fd/N``,
  passed to rsync or scp): a symlink the job planted is never followed out of it.
* Remote paths are never given to a remote shell unquoted: rsync's arguments are protected (rsync 3.2.4+
  does so by default; ``--protect-args`` is asked for all the same), scp uses the SFTP protocol, and the
  ``mkdir -p`` of an output's directory is quoted.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile

from .actions import PermanentStagingError, _source_path

log = logging.getLogger(__name__)

ACTIONS = frozenset({"remote_rsync_transfer", "remote_scp_transfer"})
#: rsync exit codes worth another try (a connection lost, a timeout); the rest are permanent (a missing file,
#: a refused login, a bad option)
RSYNC_TRANSIENT = {10, 12, 20, 30, 35, 255}
#: what ssh says when it refuses (a host key it does not trust, a key the server does not take)
REFUSALS = ("Host key verification failed", "Permission denied", "REMOTE HOST IDENTIFICATION HAS CHANGED")
#: seconds without progress before ssh gives a connection up (ServerAliveInterval x ServerAliveCountMax)
ALIVE = ("-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")
_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]+$")
_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")


class TransientCopyError(Exception):
    """Retried by the staging retry policy (a connection lost, a timeout)."""


class SshSettings:
    """The operator's side of it: which host keys are trusted, and how strictly."""

    def __init__(self, known_hosts: str | None = None, strict: bool = True, timeout: float = 30.0):
        if known_hosts and any(c.isspace() for c in known_hosts):
            raise ValueError(f"ssh_known_hosts {known_hosts!r}: a path without spaces, please")
        self.known_hosts = known_hosts
        self.strict = strict
        self.timeout = timeout

    def options(self, key_file: str) -> list[str]:
        options = ["-i", key_file, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                   "-o", "PreferredAuthentications=publickey", "-o", f"ConnectTimeout={int(self.timeout)}",
                   "-o", f"StrictHostKeyChecking={'yes' if self.strict else 'accept-new'}", *ALIVE]
        if self.known_hosts:
            options += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        return options


#: the daemon's settings (app.yml's ssh_known_hosts, ssh_strict_host_key_checking: startup.configure_ssh)
SETTINGS = SshSettings()


def configure(known_hosts: str | None, strict: bool) -> None:
    global SETTINGS
    SETTINGS = SshSettings(known_hosts, strict)
    if not strict:
        log.warning("ssh_strict_host_key_checking is off: rsync/scp staging trusts a Galaxy host's key the first "
                    "time it sees it (a changed key is still refused)")


def _endpoint(action: dict) -> tuple[str, str, int]:
    user, host, port = action.get("ssh_user"), action.get("ssh_host"), action.get("ssh_port") or 22
    if not user or not _USER.match(str(user)):
        raise PermanentStagingError(f"{action.get('action_type')}: ssh_user {user!r} is missing or not a user name")
    if not host or not _HOST.match(str(host)) or str(host).startswith("-"):
        raise PermanentStagingError(f"{action.get('action_type')}: ssh_host {host!r} is missing or not a host name")
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise PermanentStagingError(f"{action.get('action_type')}: ssh_port {port!r} is not a port") from None
    if not 0 < port < 65536:
        raise PermanentStagingError(f"{action.get('action_type')}: ssh_port {port} is not a port")
    return str(user), str(host), port


class _KeyFile:
    """The action's private key in a file of the daemon's for one command, removed right after."""

    def __init__(self, key: str | None, action_type: str):
        if not key or not isinstance(key, str):
            raise PermanentStagingError(f"{action_type}: no ssh_key (Galaxy's destination must set one)")
        self.key = key if key.endswith("\n") else key + "\n"
        self.directory: str | None = None

    def __enter__(self) -> str:
        self.directory = tempfile.mkdtemp(prefix="pulsar-lite-sshkey-")  # 0700
        path = os.path.join(self.directory, "key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.key)
        return path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _run(argv: list[str], what: str, pass_fds: tuple = (), timeout: float | None = None) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, pass_fds=pass_fds, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TransientCopyError(f"{what}: no end after {timeout:.0f} s") from None
    if done.returncode == 0:
        return
    refused = [line for line in done.stderr.splitlines() if any(word in line for word in REFUSALS)]
    detail = (refused or done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:300]
    if refused:  # ssh's own refusals: trying again cannot help
        raise PermanentStagingError(f"{what} failed (exit {done.returncode}): {detail}")
    if argv[0] == "rsync" and done.returncode in RSYNC_TRANSIENT or argv[0] in ("scp", "ssh") and \
            done.returncode == 255:
        raise TransientCopyError(f"{what} failed (exit {done.returncode}): {detail}")
    raise PermanentStagingError(f"{what} failed (exit {done.returncode}): {detail}")


def fetch(action: dict, target: str, settings: SshSettings | None = None) -> int:
    """Bring the Galaxy-side file ``action['source']['path']`` to ``target`` (retried by the caller's policy:
    TransientCopyError)."""
    settings = settings or SETTINGS
    action_type = action["action_type"]
    remote = _source_path(action)
    user, host, port = _endpoint(action)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with _KeyFile(action.get("ssh_key"), action_type) as key:
        ssh = settings.options(key)
        if action_type == "remote_rsync_transfer":
            argv = ["rsync", "--protect-args", "--partial-dir=.rsync-partial", "-e",
                    shlex.join(["ssh", "-p", str(port), *ssh]), f"{user}@{host}:{remote}", target]
        else:
            argv = ["scp", "-P", str(port), *ssh, f"{user}@{host}:{remote}", target + ".part"]
        _run(argv, f"{action_type} of {host}:{remote}")
    if action_type == "remote_scp_transfer":
        os.replace(target + ".part", target)
    return os.path.getsize(target)


def send(action: dict, source: str, settings: SshSettings | None = None) -> int:
    """Send ``source`` (a path the daemon opened below the job directory, ``/proc/self/fd/N``, or a file of its
    own) to the Galaxy-side path ``action['source']['path']``, its directory made first."""
    settings = settings or SETTINGS
    action_type = action["action_type"]
    remote = _source_path(action)  # for an output, the Galaxy-side path it goes to
    user, host, port = _endpoint(action)
    fds = _inherited(source)
    size = os.stat(source).st_size
    with _KeyFile(action.get("ssh_key"), action_type) as key:
        ssh = settings.options(key)
        directory = os.path.dirname(remote) or "."
        _run(["ssh", "-p", str(port), *ssh, f"{user}@{host}", "--", "mkdir", "-p", "--", shlex.quote(directory)],
             f"{action_type}: mkdir -p {directory} on {host}")
        if action_type == "remote_rsync_transfer":
            argv = ["rsync", "--protect-args", "--copy-links", "--partial-dir=.rsync-partial", "-e",
                    shlex.join(["ssh", "-p", str(port), *ssh]), source, f"{user}@{host}:{remote}"]
        else:
            argv = ["scp", "-P", str(port), *ssh, source, f"{user}@{host}:{remote}"]
        _run(argv, f"{action_type} to {host}:{remote}", pass_fds=fds)
    return size


def _inherited(source: str) -> tuple:
    """The descriptor ``/proc/self/fd/N`` names, for the child to inherit (its /proc/self is its own)."""
    match = re.match(r"^/proc/self/fd/(\d+)$", source)
    return (int(match.group(1)),) if match else ()
