"""What a cluster job gets from the daemon's environment: a short allowlist, never a secret.

A scheduler command passes its environment on to the job: Slurm exports all of ``sbatch``'s (``--export=ALL``
is its default), PBS's ``-V`` and Grid Engine's ``-V`` copy the submitter's, HTCondor's ``getenv = true``
copies the submitting process's. The daemon's environment holds its secrets (``PULSAR_CONFIG_PRIVATE_TOKEN``,
``PULSAR_CONFIG_MESSAGE_QUEUE_URL`` with its password, whatever else its service manager put there). So the
scheduler's commands run with this module's environment, HTCondor jobs get it explicitly, and a job gets
from the daemon only:

* what a login has: ``PATH``, ``HOME``, ``USER``, ``LOGNAME``, ``SHELL``, ``LANG``, ``LANGUAGE``, ``LC_*``,
  ``TZ``;
* what tools found through it need: ``LD_LIBRARY_PATH`` and the module system (``MODULEPATH``,
  ``MODULESHOME``, ``LOADEDMODULES``, ``_LMFILES_``, ``LMOD_*`` and the exported functions
  ``BASH_FUNC_module%%``, ``BASH_FUNC_ml%%``: Galaxy's modules dependency resolver runs ``module`` in the job);
* for the scheduler's commands, what they need to find their cluster (``SLURM_CONF``, ``SLURM_CLUSTERS``,
  ``SBATCH_*``, ``SQUEUE_*``, ``SACCT_*``, ``SCANCEL_*``, ``SCONTROL_*``, PBS's and Grid Engine's settings,
  HTCondor's) and Kerberos's (``KRB5CCNAME``, ``KRB5_CONFIG``: ssh's GSSAPI); Slurm then exports these into
  the job too, harmlessly;
* the manager's ``pass_environment`` names (fnmatch patterns allowed).

A name that looks like a secret (``PULSAR_CONFIG_*``, ``SLURM_JWT``, or holding TOKEN, PASSWORD, PASSWD,
SECRET, CREDENTIAL, API_KEY, APIKEY or JWT) is dropped even when a pattern matches it: it passes only when
``pass_environment`` names it exactly. What the manager's configuration sets (``env_FOO: bar``) and the
job's own ``env`` reach the job through its script (``command.sh``), not through this environment.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Iterable, Mapping

#: what every job gets from the daemon: what a login has, and what the tools found through it need (their
#: libraries, the module system: ``module`` is an exported bash function)
LOGIN = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "LD_LIBRARY_PATH",
         "MODULEPATH", "MODULESHOME", "LOADEDMODULES", "_LMFILES_", "LMOD_*", "BASH_FUNC_module%%",
         "BASH_FUNC_ml%%")
#: what the scheduler's commands need to find their cluster and authenticate (and nothing for the job itself)
SCHEDULER = ("SLURM_CONF", "SLURM_CLUSTERS", "SBATCH_*", "SQUEUE_*", "SACCT_*", "SCANCEL_*", "SCONTROL_*",
             "PBS_CONF_FILE", "PBS_DEFAULT", "PBS_SERVER", "SGE_ROOT", "SGE_CELL", "SGE_QMASTER_PORT",
             "SGE_EXECD_PORT", "SGE_CLUSTER_NAME", "CONDOR_CONFIG", "_CONDOR_*", "KRB5CCNAME", "KRB5_CONFIG")
#: ssh's agent, for SecureShell's ssh only (ssh never forwards it without -A; a local job must not get it)
SSH_CLIENT = ("SSH_AUTH_SOCK",)
SECRET_WORDS = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "CREDENTIAL", "API_KEY", "APIKEY", "JWT")

log = logging.getLogger(__name__)


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return upper.startswith("PULSAR_CONFIG_") or any(word in upper for word in SECRET_WORDS)


def scrubbed(environ: Mapping[str, str] | None = None, patterns: Iterable[str] = LOGIN,
             passed: Iterable[str] = ()) -> dict[str, str]:
    """The variables of ``environ`` (default: the daemon's) that match ``patterns`` or the manager's ``passed``
    names, without any that looks like a secret unless ``passed`` names it exactly."""
    environ = os.environ if environ is None else environ
    passed = [str(name) for name in passed]
    exact = {name for name in passed if not any(c in name for c in "*?[")}
    allowed = [*patterns, *passed]
    result = {}
    for name, value in environ.items():
        if name in exact or (any(fnmatch.fnmatchcase(name, p) for p in allowed) and not looks_secret(name)):
            result[name] = value
    return result


def job_environment(passed: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a job gets from the daemon (HTCondor's ``environment``, Grid Engine's instead of ``-V``)."""
    return scrubbed(environ, LOGIN, passed)


def command_environment(passed: Iterable[str] = (), environ: Mapping[str, str] | None = None,
                        ssh: bool = False) -> dict[str, str]:
    """The environment a scheduler command (sbatch, qsub, squeue; or ssh to the submit host) runs with."""
    return scrubbed(environ, (*LOGIN, *SCHEDULER, *(SSH_CLIENT if ssh else ())), passed)


def withheld(kept: Mapping[str, str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The names of the daemon's variables (``environ``) a job does not get when it gets ``kept``."""
    environ = os.environ if environ is None else environ
    return sorted(name for name in environ if name not in kept)


def log_withheld(manager: str, kept: Mapping[str, str], how: str = "its jobs",
                 environ: Mapping[str, str] | None = None) -> None:
    """Say once, at a manager's start, which of the daemon's variables (names only) its jobs no longer get
    (Pulsar passed them all) and how to keep one."""
    names = withheld(kept, environ)
    if not names:
        return
    secret = [name for name in names if looks_secret(name)]
    plain = [name for name in names if not looks_secret(name)]
    log.info("manager '%s': %s no longer get these variables of the daemon's environment: %s. To keep one, name "
             "it (or a pattern) in the manager's pass_environment%s", manager, how, ", ".join(plain) or "(none)",
             f"; these look like secrets and pass only when named exactly: {', '.join(secret)}" if secret else "")


#: a ``$`` the submit language expands: before ``(`` or a name and ``(`` (``$(x)``, ``$ENV(x)``, ``$Fn(x)``), and
#: not after another ``$`` (``$$`` it leaves as it is; ``$(DOLLAR)`` right after a ``$`` would make ``$$(``)
_EXPANDED_DOLLAR = re.compile(r"(?<!\$)\$(?=\w*\()")
#: what no writing gets through: ``$$(`` is HTCondor's match-time macro (the schedd fills it from the machine's
#: ad), and a ``$(DOLLAR)`` of the value's own would be expanded after ours
_UNWRITABLE = re.compile(r"\$\$\(|\$\(DOLLAR\)", re.IGNORECASE)
_said_left_out: set[str] = set()


def condor_environment(variables: Mapping[str, str]) -> str:
    """HTCondor's ``environment`` value (its "new" syntax): double-quoted, each value in single quotes, a
    quote of either kind inside written twice, a ``$`` the submit language would expand written ``$(DOLLAR)``
    and every other ``$`` as it is (``$$`` stays ``$$``: ``$(DOLLAR)$(DOLLAR)`` would become ``$$(DOLLAR)``, a
    match-time macro). A value HTCondor cannot carry (several lines, as an exported bash function; ``$$(``) is
    left out, and the log says so once per name."""
    entries = []
    for name, value in sorted(variables.items()):
        if "=" in name or not name or any(c.isspace() for c in name):
            why = "its name"
        elif "\n" in value or "\r" in value:
            why = "a value on several lines"
        elif _UNWRITABLE.search(value):
            why = "a value holding $$( or $(DOLLAR)"
        else:
            written = _EXPANDED_DOLLAR.sub("$(DOLLAR)", value).replace("'", "''").replace('"', '""')
            entries.append(f"{name}='{written}'")
            continue
        if name not in _said_left_out:
            _said_left_out.add(name)
            log.warning("HTCondor jobs do not get %s: the submit description cannot carry %s (set what the job "
                        "needs with the manager's env_* keys)", name, why)
    return '"' + " ".join(entries) + '"'
