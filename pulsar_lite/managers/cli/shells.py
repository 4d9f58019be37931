"""Where queued_cli's scheduler commands run: here (``LocalShell``) or on a submit host (``SecureShell``).

A shell runs one command (a list of arguments) and returns what it printed. It raises SchedulerError,
with one line saying what failed, when the command could not be run at all (not found, ssh could not
connect or log in: nothing ran), and OutcomeUnknown when the command may have run but its answer is lost
(it outlived ``shell_timeout`` and was killed; the ssh connection dropped after it was made). A command
that ran and exited non-zero is returned as it is: what that means is the job plugin's business.
"""
from __future__ import annotations

import logging
import os
import pwd
import re
import shlex
import signal
import subprocess
import tempfile
from dataclasses import dataclass

from ..contract import OutcomeUnknown, SchedulerDown, SchedulerError
from ..environment import command_environment

log = logging.getLogger(__name__)


def kill_tree(pid: int) -> None:
    """SIGKILL a command and everything it started (a wrapper's sbatch must not submit after the daemon gave the
    command up and went looking for its job). Found through /proc's children lists, so the command stays in the
    daemon's own process group (a crash of the daemon takes it along, as before)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    pending.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    for target in found:
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    def last_error_line(self) -> str:
        lines = [line for line in (self.stderr or self.stdout).strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit code {self.returncode}"


class LocalShell:
    def __init__(self, timeout: float = 60.0, pass_environment=(), **_ignored):
        self.timeout = timeout
        self.pass_environment = tuple(pass_environment or ())

    def describe(self) -> str:
        return "this host"

    def environment(self) -> dict[str, str]:
        """What the command runs with, and so what the job gets (sbatch exports it): never a daemon secret."""
        return command_environment(self.pass_environment)

    def argv(self, command: list[str]) -> list[str]:
        return command

    def user(self) -> str:
        """The user the commands run as, who owns the jobs they submit: the daemon's."""
        return pwd.getpwuid(os.geteuid()).pw_name

    def run(self, command: list[str]) -> Result:
        argv = self.argv(command)
        try:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       stdin=subprocess.DEVNULL, errors="replace", env=self.environment())
        except OSError as exc:
            raise SchedulerError(f"cannot run '{command[0]}' on {self.describe()}: {exc.strerror}") from None
        try:
            stdout, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:  # killed: what it had done by then is not known
            kill_tree(process.pid)
            process.communicate()
            raise OutcomeUnknown(f"'{shlex.join(command)}' on {self.describe()} took more than {self.timeout:g} s "
                                 f"and was stopped") from None
        return self.check(command, Result(process.returncode, stdout, stderr))

    def check(self, command: list[str], result: Result) -> Result:
        if result.returncode == 127:
            raise SchedulerError(f"'{command[0]}' was not found on {self.describe()}: {result.last_error_line()}")
        return result


#: what ssh says when it could not connect or log in: the remote command never ran (any other failure of
#: ssh itself, exit 255, may come after the command started: a dropped connection, a reset, a dead master)
NEVER_CONNECTED = re.compile(
    r"^ssh: connect to host |^ssh: Could not resolve hostname |Permission denied \(|^Host key verification failed"
    r"|^kex_exchange_identification: |^Unable to negotiate with |Too many authentication failures"
    r"|^No \S+ host key is known for |^REMOTE HOST IDENTIFICATION HAS CHANGED", re.MULTILINE)
#: of those, the ones that pass (the host is down, rebooting, unreachable for a while): the command waits and
#: is tried again; the others (a key or host key refused) are the configuration's and fail at once
UNREACHABLE = re.compile(r"^ssh: connect to host |^ssh: Could not resolve hostname |^kex_exchange_identification: ",
                         re.MULTILINE)


def _control_directory() -> str:
    """A private directory for ssh's connection sockets: short enough for a socket path (about 100 bytes),
    owned by this user and no one else."""
    path = os.path.join(tempfile.gettempdir(), f"pulsar-lite-ssh-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise SchedulerError(f"{path} must be a directory owned by uid {os.getuid()} with mode 0700")
    return path


class SecureShell(LocalShell):
    """``ssh`` from OpenSSH, key-based (BatchMode: never a password prompt), one connection reused across
    commands (ControlMaster, kept for ControlPersist seconds after the last command)."""

    def __init__(self, hostname: str | None = None, username: str | None = None, private_key: str | None = None,
                 port: int | None = None, strict_host_key_checking: bool = True, connect_timeout: int = 30,
                 timeout: float = 60.0, rsh: str = "ssh", persist: int = 300, known_hosts: str | None = None,
                 pass_environment=(), **_ignored):
        super().__init__(timeout=timeout, pass_environment=pass_environment)
        if not hostname:
            raise SchedulerError("SecureShell needs shell_hostname (the submit host)")
        self.hostname = hostname
        self.username = username
        self.private_key = private_key
        self.port = port
        self.strict = strict_host_key_checking
        self.connect_timeout = connect_timeout
        self.rsh = rsh
        self.persist = persist
        self.known_hosts = known_hosts
        self._user: str | None = None

    def user(self) -> str:
        """The user ssh logs in as on the submit host, by the name the scheduler prints (asked once: a
        ``shell_username`` may be another name of the same uid, or ssh's configuration may pick the user)."""
        if self._user is None:
            result = self.run(["id", "-un"])
            name = result.stdout.strip()
            if result.returncode != 0 or not name or any(c.isspace() for c in name):
                raise SchedulerError(f"cannot tell which user ssh logs in as on {self.describe()}: "
                                     f"{result.last_error_line()}")
            self._user = name
        return self._user

    def describe(self) -> str:
        who = f"{self.username}@" if self.username else ""
        return f"{who}{self.hostname}" + (f":{self.port}" if self.port else "")

    def environment(self) -> dict[str, str]:
        """ssh's: the login's environment on the submit host is the job's (ssh sends at most LANG and LC_*)."""
        return command_environment(self.pass_environment, ssh=True)

    def ssh_options(self) -> list[str]:
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                   "-o", "ControlMaster=auto", "-o", f"ControlPath={_control_directory()}/%C",
                   "-o", f"ControlPersist={self.persist}", "-o", "ServerAliveInterval=30"]
        if not self.strict:
            options += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
        else:
            options += ["-o", "StrictHostKeyChecking=yes"]
            if self.known_hosts:
                options += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.private_key:
            options += ["-i", self.private_key, "-o", "IdentitiesOnly=yes"]
        if self.port:
            options += ["-p", str(self.port)]
        if self.username:
            options += ["-l", self.username]
        return options

    def argv(self, command: list[str]) -> list[str]:
        # the remote side hands the command to the login shell as one string: quote every argument
        return [self.rsh, *self.ssh_options(), self.hostname, "--", shlex.join(command)]

    def check(self, command: list[str], result: Result) -> Result:
        if result.returncode == 255:  # ssh's own failure (the remote command's codes are 0-254)
            message = f"ssh to {self.describe()} failed: {result.last_error_line()}"
            if UNREACHABLE.search(result.stderr or ""):
                raise SchedulerDown(message)
            if NEVER_CONNECTED.search(result.stderr or ""):
                raise SchedulerError(message)
            raise OutcomeUnknown(message)
        return super().check(command, result)

    def close(self) -> None:
        """Stop the shared connection (at shutdown)."""
        try:
            subprocess.run([self.rsh, *self.ssh_options(), "-O", "exit", self.hostname], capture_output=True,
                           timeout=10, stdin=subprocess.DEVNULL, env=self.environment())
        except (OSError, subprocess.TimeoutExpired, SchedulerError):
            pass


SHELLS = {"LocalShell": LocalShell, "SecureShell": SecureShell}
