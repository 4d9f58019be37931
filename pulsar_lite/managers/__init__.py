"""Manager registry: one table, plain data.

A manager type names the module and class that implement it and the
third-party packages it needs. Nothing is imported until a configured
manager is built, and a missing package gives an error naming the manager
type and the package (never a silently skipped plugin).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..config.schema import Option
from ..errors import ConfigError, ManagerUnavailable


@dataclass(frozen=True)
class ManagerSpec:
    type: str
    target: str  # "module:Class"
    requires: tuple[tuple[str, str], ...] = ()  # (import name, PyPI package)
    options: dict[str, Option] = field(default_factory=dict)
    summary: str = ""
    #: open-ended key prefixes: ``<prefix>X: v`` is collected as ``{X: v}`` in the value ``<prefix>params``
    prefixes: tuple[str, ...] = ()


def _options(*options: Option) -> dict[str, Option]:
    return {option.key: option for option in options}


#: Options of every cluster manager (pulsar_lite.managers.scheduler).
SCHEDULER_OPTIONS = (
    Option("native_specification", "str", None, "scheduler options added to every job of this manager (sbatch/qsub "
           "options, a DRMAA native specification); what a client may add to them: client_submit_params"),
    Option("client_submit_params", "choice", None, "what a client's submit params (Galaxy's "
           "submit_native_specification, submit_cores, submit_memory, submit_walltime, submit_queue; HTCondor "
           "submit keys) may add to this manager's options. ignore = only the resources it asks for by name whose "
           "option is in client_submit_options (its native specification is dropped); append = its own options too, "
           "each when in client_submit_options; in both, an option the manager sets (native_specification, job_*, "
           "submit_*: partition, account, QoS, ...) wins over the client's; allow = all of it, after the manager's "
           "(the client's last: it can change partition, account, QoS). The job name and streams stay the daemon's. "
           "What is dropped is logged, one line per job; the job runs without it. Unset: what Pulsar 0.16.0 does "
           "for the manager type: queued_cli ignore, queued_condor append, queued_drmaa ignore when "
           "native_specification is set, else allow (docs/security.md)", ("ignore", "append", "allow")),
    Option("client_submit_options", "list", None, "the options a client may set (client_submit_params ignore: "
           "its resources; append: its own options too), spelled as the scheduler spells them (--mem, -c, --time; "
           "-l h_vmem for one -l resource, -l for any; HTCondor: submit keys such as request_memory), or '*' for "
           "any. Unset: resources only: Slurm --cpus-per-task, --mem, --mem-per-cpu, --mem-per-gpu, --time, "
           "--ntasks, --nodes, --ntasks-per-node, --gres, --gpus, --tmp; Torque/OpenPBS -l walltime, mem, pmem, "
           "vmem, nodes, ncpus, select; Grid Engine -l h_rt, s_rt, h_cpu, h_vmem, mem_free and -pe; HTCondor * "
           "(as Pulsar)"),
    Option("submit_concurrency", "int", 2, "scheduler submissions (and deletes) running at once"),
    Option("scheduler_failure_timeout", "float", 3600.0, "seconds the scheduler may fail to answer status queries "
           "before its jobs are failed with the reason (they may be running still: the scheduler was unreachable)"),
    Option("status_time_budget", "float", 0.05, "share of the time the status loop may spend in its rounds (the "
           "scheduler's status command and reading its answer) when it follows 100 jobs or more: a round that takes "
           "longer pushes the next one back past min_polling_interval (10,000 Slurm jobs: a 0.4 s round every 8 s), so that neither the daemon nor "
           "the scheduler is kept busy by a big site's polling; 1 = every min_polling_interval whatever it costs"),
    Option("reconcile_interval", "float", 60.0, "seconds between two passes comparing the store with the jobs "
           "followed in the scheduler"),
    Option("pass_environment", "list", [], "variables of the daemon's environment its jobs get besides PATH, HOME, "
           "USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, LD_LIBRARY_PATH and the module system's (MODULEPATH, "
           "MODULESHOME, LOADEDMODULES, _LMFILES_, LMOD_*, BASH_FUNC_module%%, BASH_FUNC_ml%%) (names or patterns "
           "such as CONDA_*); the rest never reaches a job (the manager logs their names at its start). A name that "
           "looks like a secret (PULSAR_CONFIG_*, SLURM_JWT, *TOKEN*, *PASSWORD*, *SECRET*, ...) passes only when "
           "given exactly"),
    Option("unknown_outcome_window", "float", 120.0, "seconds a submission whose outcome is unknown (a timeout, "
           "a dropped ssh connection) is looked for by its name before it may be sent again; it is sent again only "
           "when the scheduler never showed it and the job left no trace (pid, return_code) in its directory"),
    Option("held_job_grace", "float", None, "seconds a job the scheduler holds (Slurm JobHeldAdmin, JobHeldUser, "
           "requeued held, SPECIAL_EXIT; PBS H; Grid Engine h; HTCondor held) is left for an operator to release "
           "before it is failed with the scheduler's reason and deleted there; 0 = at once. Default: 0 for "
           "queued_condor (HTCondor holds a job it cannot run), 3600 for the others. A job in a state nothing "
           "releases by itself (Grid Engine E, a state pulsar_lite does not know) is failed and deleted at once"),
    Option("clock_skew", "float", 30.0, "seconds the scheduler's clock may be behind the daemon's: a submission "
           "whose outcome is unknown is looked for among the jobs of its name submitted since that long before it "
           "(by the scheduler's time, compared in epoch seconds, never in a time zone)"),
    Option("return_code_grace", "float", 30.0, "seconds a job the scheduler says has ended may take to show its "
           "return_code file (filesystem lag: NFS caches); then the scheduler's exit code is used where it has one, "
           "else the job is failed"),
)

#: Options of queued_cli's shells (Pulsar's names: shell_*).
SHELL_OPTIONS = (
    Option("shell_plugin", "choice", "LocalShell", "how scheduler commands run: LocalShell (here) or SecureShell "
           "(ssh to shell_hostname)", ("LocalShell", "SecureShell")),
    Option("shell_hostname", "str", None, "SecureShell: the submit host"),
    Option("shell_username", "str", None, "SecureShell: the user to log in as (default: ssh's)"),
    Option("shell_private_key", "path", None, "SecureShell: private key file (key-based login only)"),
    Option("shell_port", "int", None, "SecureShell: ssh port"),
    Option("shell_strict_host_key_checking", "bool", True, "SecureShell: refuse a host key not in known_hosts"),
    Option("shell_known_hosts", "path", None, "SecureShell: known_hosts file to check the host key against "
           "(default: ssh's own, ~/.ssh/known_hosts)"),
    Option("shell_connect_timeout", "int", 30, "SecureShell: seconds to wait for the ssh connection"),
    Option("shell_timeout", "float", 60.0, "seconds a scheduler command may take before it counts as failed"),
)

#: Options of the managers that call a scheduler's library (htcondor2, DRMAA).
LIBRARY_OPTIONS = (
    Option("scheduler_call_timeout", "float", 60.0, "seconds a call into the scheduler's library (and, for "
           "queued_drmaa, a qstat/qacct/qdel) is waited for; a wedged schedd or qmaster then fails that call (a "
           "submit is looked up by its name) and never holds the status loop, other jobs' submissions, deletes or "
           "shutdown"),
)

REGISTRY: dict[str, ManagerSpec] = {
    "queued_python": ManagerSpec(
        type="queued_python",
        target="pulsar_lite.managers.queued_python:QueuedPythonManager",
        summary="runs job scripts on this host, num_concurrent_jobs at a time",
    ),
    "queued_cli": ManagerSpec(
        type="queued_cli",
        target="pulsar_lite.managers.cli.manager:QueuedCliManager",
        options=_options(
            Option("job_plugin", "choice", None, "the scheduler: Slurm, Torque or OpenPBS", ("Slurm", "Torque", "OpenPBS"),
                   required=True),
            Option("status_command_bytes", "int", 100000, "longest status command (squeue/sacct/qstat with job ids), "
                   "in bytes: more jobs than fit are asked about in several commands of the same round (Linux "
                   "refuses one argument over 128 KiB; over ssh the whole command is one)"),
            *SHELL_OPTIONS, *SCHEDULER_OPTIONS),
        prefixes=("job_",),
        summary="submits job scripts to Slurm, Torque or OpenPBS with their commands, here or over ssh",
    ),
    "queued_condor": ManagerSpec(
        type="queued_condor",
        target="pulsar_lite.managers.condor:QueuedCondorManager",
        requires=(("htcondor2", "htcondor"),),
        options=_options(
            Option("condor_schedd_name", "str", None, "the schedd to submit to (default: the collector's local one)"),
            Option("condor_collector", "str", None, "the collector to ask for it (default: CONDOR_CONFIG's "
                   "COLLECTOR_HOST)"),
            *LIBRARY_OPTIONS, *SCHEDULER_OPTIONS),
        prefixes=("submit_",),
        summary="submits to HTCondor through its Python bindings (htcondor2); submit_* keys go to the submit "
                "description",
    ),
    "queued_drmaa": ManagerSpec(
        type="queued_drmaa",
        target="pulsar_lite.managers.drmaa:QueuedDrmaaManager",
        requires=(("drmaa", "drmaa"),),
        options=_options(*LIBRARY_OPTIONS, *SCHEDULER_OPTIONS),
        summary="submits through a DRMAA 1.0 library (DRMAA_LIBRARY_PATH; Grid Engine tested)",
    ),
}


def manager_spec(manager_type: str, source: str = "configuration", manager: str = "?") -> ManagerSpec:
    try:
        return REGISTRY[manager_type]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(
            f"{source}: manager '{manager}' has unknown type '{manager_type}' (known types: {known})"
        ) from None


def manager_class(manager_type: str, manager: str = "?"):
    spec = manager_spec(manager_type, manager=manager)
    for module_name, package in spec.requires:
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise ManagerUnavailable(
                f"manager '{manager}' (type {manager_type}) needs the Python package '{package}', "
                f"which cannot be imported: {exc}. Install it with: pip install {package}"
            ) from None
        except Exception as exc:  # installed, but it cannot load what it wraps (drmaa: DRMAA_LIBRARY_PATH)
            raise ManagerUnavailable(
                f"manager '{manager}' (type {manager_type}): the Python package '{package}' is installed but "
                f"cannot be loaded: {str(exc).strip() or type(exc).__name__}") from None
    module_name, class_name = spec.target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
