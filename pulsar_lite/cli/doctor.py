"""``pulsar-lite doctor``: what to fix before (or while) the daemon runs, one line per finding.

Exit 0 when nothing needs fixing (warnings allowed), 1 when something does, 2 when the configuration
cannot even be read.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import shutil
import socket
import stat
import subprocess
import urllib.request
from collections import Counter

OK, WARN, FIX = "ok", "warning", "FIX"
WEAK_TOKENS = {"changeme", "change_me", "secret", "password", "token", "private_token", "galaxy", "pulsar", "test"}
SCHEDULER_COMMANDS = {"Slurm": ("sbatch", "squeue", "scancel"), "Torque": ("qsub", "qstat", "qdel"),
                      "OpenPBS": ("qsub", "qstat", "qdel")}


class Findings:
    def __init__(self):
        self.items: list[tuple[str, str]] = []

    def add(self, level: str, text: str) -> None:
        self.items.append((level, text))
        print(f"{level:<7} {text}", flush=True)

    @property
    def problems(self) -> int:
        return sum(1 for level, _ in self.items if level == FIX)


def entropy_bits(token: str) -> float:
    counts = Counter(token)
    return -sum(c / len(token) * math.log2(c / len(token)) for c in counts.values()) * len(token)


def check_token(config, found: Findings) -> None:
    token = config.private_token
    if not token:
        if config.web and config.host not in ("127.0.0.1", "::1", "localhost"):
            found.add(FIX, f"no private_token while listening on {config.host}: anyone who reaches it can run jobs "
                           "(set one: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
        else:
            found.add(WARN, "no private_token (the REST face listens on loopback only)")
        return
    check_strength("private_token", token, found)


def check_strength(key: str, token: str, found: Findings) -> None:
    bits = entropy_bits(token)
    if token.lower() in WEAK_TOKENS or len(token) < 16 or bits < 64:
        found.add(FIX, f"{key} is weak ({len(token)} characters, about {bits:.0f} bits): use 32 random "
                       "characters (pulsar-lite config generates one)")
    else:
        found.add(OK, f"{key}: {len(token)} characters, about {bits:.0f} bits")


def check_directory(path: str, what: str, found: Findings, private: bool = True) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(path.rstrip("/")) or "/"
        if os.access(parent, os.W_OK):
            found.add(WARN, f"{what} {path} does not exist yet (the daemon creates it)")
        else:
            found.add(FIX, f"{what} {path} does not exist and {parent} is not writable by uid {os.getuid()}")
        return
    if not stat.S_ISDIR(info.st_mode):
        found.add(FIX, f"{what} {path} is not a directory")
        return
    problems = []
    if info.st_uid != os.getuid():
        problems.append(f"owned by uid {info.st_uid}, the daemon runs as uid {os.getuid()}")
    if not os.access(path, os.W_OK | os.X_OK):
        problems.append(f"not writable by uid {os.getuid()}")
    if problems:
        found.add(FIX, f"{what} {path}: {'; '.join(problems)} (chown/chmod it)")
    elif private and info.st_mode & 0o007:
        found.add(WARN, f"{what} {path} is open to other users (mode {info.st_mode & 0o777:04o}); 0700 or 0750 "
                        "keeps job data private")
    else:
        found.add(OK, f"{what} {path} (mode {info.st_mode & 0o777:04o})")


def check_disk(path: str, found: Findings) -> None:
    probe = path
    while not os.path.exists(probe) and probe != "/":
        probe = os.path.dirname(probe)
    usage = shutil.disk_usage(probe)
    free_gib, share = usage.free / 2 ** 30, usage.free / usage.total if usage.total else 0
    if free_gib < 1 or share < 0.02:
        found.add(FIX, f"only {free_gib:.1f} GiB ({share:.0%}) free under {path}")
    elif free_gib < 10 or share < 0.10:
        found.add(WARN, f"{free_gib:.1f} GiB ({share:.0%}) free under {path}")
    else:
        found.add(OK, f"{free_gib:.0f} GiB ({share:.0%}) free under {path}")


def check_broker(config, found: Findings) -> None:
    import kombu

    from .. import wire

    for url in config.message_queue_url or []:
        label = kombu.Connection(url).as_uri()
        try:
            with kombu.Connection(url, connect_timeout=5) as connection:
                connection.ensure_connection(max_retries=1)
                channel = connection.default_channel
                missing = []
                for manager in config.managers:
                    for logical in ("setup", "status", "kill"):
                        name = wire.amqp_queue_name(logical, manager, config.amqp_key_prefix)
                        try:
                            channel.queue_declare(name, passive=True)
                        except Exception:
                            missing.append(name)
                            channel = connection.channel()
            if missing:
                found.add(WARN, f"broker {label}: reachable; queues not declared yet (the daemon declares them "
                                f"when it starts): {', '.join(missing[:4])}")
            else:
                found.add(OK, f"broker {label}: reachable, queues present")
        except Exception as exc:
            found.add(FIX, f"broker {label} cannot be reached with these credentials: {str(exc).strip() or exc!r}")


def check_managers(config, found: Findings) -> None:
    from ..managers import manager_class

    for name, manager in config.managers.items():
        try:
            manager_class(manager.type, name)
        except Exception as exc:
            found.add(FIX, str(exc))
            continue
        if manager.type == "queued_python":
            found.add(OK if shutil.which("bash") else FIX, f"manager {name}: queued_python, bash "
                      f"{'found' if shutil.which('bash') else 'missing'}")
        elif manager.type == "queued_cli":
            check_cli(name, manager, found)
        elif manager.type == "queued_condor":
            check_command(f"manager {name}", [os.sys.executable, "-c", "import htcondor2 as h; h.Schedd("
                                                "h.Collector().locate(h.DaemonType.Schedd)).query("
                                                "projection=['ClusterId'], limit=1)"],
                          "the HTCondor schedd answers", found)
        elif manager.type == "queued_drmaa":
            check_command(f"manager {name}", [os.sys.executable, "-c", "import drmaa; s = drmaa.Session(); "
                                                "s.initialize(); print(s.drmsInfo); s.exit()"],
                          "a DRMAA session opens", found)


def check_tes(config, found: Findings) -> None:
    """The TES face's container runtime, where its executors run: on this host for ``queued_python``, on the
    cluster's nodes otherwise (this host cannot tell about those)."""
    from ..tes.service import default_manager

    if not config.tes:
        return
    command = config.tes_container_command or config.tes_container_runtime
    name = default_manager(config)
    kind = config.managers[name].type if name in config.managers else "?"
    path = shutil.which(command)
    if kind != "queued_python":
        found.add(OK if path else WARN, f"TES: executors run on the nodes of manager {name} ({kind}): {command} "
                  f"must be installed there ({'found' if path else 'not found'} on this host)")
        if kind == "queued_drmaa" and "-notify" not in str(config.managers[name].values.get("native_specification")
                                                           or ""):
            found.add(WARN, f"TES: manager {name} has no -notify in native_specification: on Grid Engine a "
                            "cancelled task's container then outlives its job (docs/tes.md)")
    elif not path:
        found.add(FIX, f"TES: executors run on this host (manager {name}) but {command} is not on PATH: install "
                       "it, set tes_container_command, or set tes: false")
    else:
        check_command(f"TES (manager {name}, executors on this host)", [path, "--version"],
                      f"{command} --version runs", found)


def check_tes_access(config, found: Findings) -> None:
    """Who may use the TES face: its own credentials (docs/tes.md, "Who may use it")."""
    from ..errors import ConfigError
    from ..tes import passwords
    from ..tes.cors import Cors

    if not config.tes or not config.web:
        return
    if not config.tes_token and not config.tes_users_file:
        found.add(WARN, "TES: neither tes_token nor tes_users_file is set: the Pulsar private_token opens the TES "
                        "routes too, with every task visible (docs/tes.md, 'Who may use it')")
    if config.tes_token:
        check_strength("tes_token", config.tes_token, found)
        if config.tes_token == config.private_token:
            found.add(WARN, "TES: tes_token is the same as private_token: the Pulsar token opens TES as well")
    if config.tes_users_file:
        try:
            users = passwords.read_users(config.tes_users_file)
        except ConfigError as exc:
            found.add(FIX, f"TES: {exc} (the daemon does not start; pulsar-lite tes-user add writes it)")
        else:
            mode = os.stat(config.tes_users_file).st_mode & 0o777
            if mode & 0o077:
                found.add(WARN, f"TES: tes_users_file {config.tes_users_file} is mode {mode:04o}: others may read "
                                f"the password hashes (chmod 600 it)")
            found.add(OK if users or config.tes_token else WARN,
                      f"TES: {len(users)} user(s) in {config.tes_users_file}")
    try:
        Cors(config.tes_cors_origins)
    except ConfigError as exc:
        found.add(FIX, f"TES: {exc}")


def check_cli(name: str, manager, found: Findings) -> None:
    commands = SCHEDULER_COMMANDS[manager.job_plugin]
    if manager.shell_plugin == "SecureShell":
        from ..managers.cli.shells import SecureShell
        from ..managers.contract import SchedulerError

        shell = SecureShell(**{k[len("shell_"):]: v for k, v in manager.values.items()
                               if k.startswith("shell_") and k != "shell_plugin" and v is not None})
        try:
            result = shell.run(["sh", "-c", " && ".join(f"command -v {c}" for c in commands)])
        except SchedulerError as exc:
            found.add(FIX, f"manager {name}: {exc}")
            return
        if result.returncode != 0:
            found.add(FIX, f"manager {name}: {', '.join(commands)} not all found on {shell.describe()}")
        else:
            found.add(OK, f"manager {name}: ssh to {shell.describe()} works, {', '.join(commands)} found there")
        return
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        found.add(FIX, f"manager {name} ({manager.job_plugin}): {', '.join(missing)} not found on PATH")
        return
    status = [commands[1], "-h"] if manager.job_plugin == "Slurm" else [commands[1]]
    check_command(f"manager {name}", status, f"{' '.join(status)} answers", found)


def check_command(subject: str, argv: list[str], what: str, found: Findings) -> None:
    """Run ``argv``; ok when it exits 0, else FIX with its last line (``subject``: who needs it)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        found.add(FIX, f"{subject}: {what}? no: {exc}")
        return
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        found.add(FIX, f"{subject}: {what}? no: {lines[-1] if lines else f'exit {done.returncode}'}")
    else:
        found.add(OK, f"{subject}: {what}")


def check_clock(found: Findings) -> None:
    class Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                    ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                    ("pad", ctypes.c_byte * 200)]

    try:
        state = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(timex := Timex()))
    except (OSError, AttributeError):
        found.add(WARN, "the clock's synchronisation cannot be read here")
        return
    if state == 5 or timex.status & 0x40:  # TIME_ERROR / STA_UNSYNC
        found.add(WARN, "the system clock is not synchronised (NTP): job times and token expiries may be off")
    else:
        found.add(OK, f"the system clock is synchronised (estimated error {timex.esterror} us)")


def check_tls(config, found: Findings) -> None:
    if not config.web:
        return
    from .. import tls

    for level, text in tls.check(config.ssl_pem, config.host):
        found.add({"ok": OK, "warn": WARN, "fail": FIX}[level], text)


def check_port(config, found: Findings) -> None:
    if not config.web:
        return
    host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    address = f"[{host}]" if ":" in host else host
    scheme = "https" if config.ssl_pem else "http"
    try:
        import ssl

        context = ssl._create_unverified_context() if config.ssl_pem else None  # loopback: our own port
        with urllib.request.urlopen(f"{scheme}://{address}:{config.port}/healthz", timeout=3,
                                    context=context) as response:
            health = json.load(response)
        if "pulsar_lite_version" in health:
            found.add(OK, f"port {config.port}: pulsar_lite {health['pulsar_lite_version']} answers there "
                          f"({health.get('status')})")
            return
        found.add(FIX, f"port {config.port}: something else answers there: {health}")
        return
    except (OSError, ValueError):
        pass
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((config.host, int(config.port)))
            found.add(OK, f"port {config.host}:{config.port} is free")
        except OSError as exc:
            found.add(FIX, f"port {config.host}:{config.port} cannot be taken: {exc.strerror}")


def run(args) -> int:
    from ..config import load_config
    from ..errors import ConfigError

    found = Findings()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        found.add(FIX, f"configuration: {exc}")
        return 2
    found.add(OK, f"configuration {config.source or 'built-in'} is valid"
              + (f" ({len(config.warnings)} warning(s) above)" if config.warnings else ""))
    check_token(config, found)
    check_directory(config.persistence_directory, "persistence_directory", found)
    for staging in sorted({m.staging_directory for m in config.managers.values()}):
        check_directory(staging, "staging_directory", found, private=False)
        check_disk(staging, found)
    if config.file_cache_dir:
        check_directory(config.file_cache_dir, "file_cache_dir", found)
    if config.message_queue_url:
        check_broker(config, found)
    check_managers(config, found)
    check_tes(config, found)
    check_tes_access(config, found)
    check_clock(found)
    check_tls(config, found)
    check_port(config, found)
    problems = found.problems
    print(f"doctor: {problems} thing(s) to fix" if problems else "doctor: nothing to fix")
    return 1 if problems else 0
