"""How a TES task's executors run: one job script that starts each executor in a container, one after the
other, and records when each started and ended and how it exited.

Every path a task names is a path inside the container. On the host each has a mirror under
``<job>/tes/root`` (``/data/out.txt`` -> ``<job>/tes/root/data/out.txt``): inputs are staged there before
the job runs, executors write outputs there, and the mirror's directories are bind-mounted at their
container paths (inputs read-only). podman and docker share one way to run a container; apptainer and
singularity another. A cancel (SIGTERM to the job's process group) removes the running container: a
``podman run`` client killed alone would leave its container running.
"""
from __future__ import annotations

import os
import posixpath
import shlex

from .protocol import has_wildcards

OCI_RUNTIMES = ("podman", "docker")
SIF_RUNTIMES = ("apptainer", "singularity")
RUNTIMES = OCI_RUNTIMES + SIF_RUNTIMES
#: exit codes of ``podman run`` / ``docker run`` that mean the container could not be run at all
RUNTIME_FAILURES = {125: "the container runtime failed (image missing, bad option)",
                    126: "the command in the container could not be invoked",
                    127: "the command was not found in the container"}


def host_path(root: str, container_path: str) -> str:
    """The host mirror of a container path (already checked absolute and free of '..')."""
    return os.path.join(root, container_path.lstrip("/"))


def mounts(task: dict) -> list[tuple[str, bool]]:
    """(container path, read-only) of everything bind-mounted, parents before children, no duplicates."""
    wanted: dict[str, bool] = {}

    def add(path: str, read_only: bool) -> None:
        if path == "/":
            raise ValueError("a task may not map the container's / ")
        wanted[path] = wanted.get(path, True) and read_only

    for entry in task["inputs"]:
        add(entry["path"], True)
    for entry in task["outputs"]:
        if entry["path_prefix"]:
            add(posixpath.normpath(entry["path_prefix"]), False)
        elif entry["type"] == "DIRECTORY":
            add(entry["path"], False)
        else:
            add(posixpath.dirname(entry["path"]), False)
    for volume in task["volumes"]:
        add(volume, False)
    for executor in task["executors"]:
        for key in ("stdout", "stderr"):
            if executor[key] and not _covered(executor[key], wanted):
                add(posixpath.dirname(executor[key]), False)
    return sorted(wanted.items(), key=lambda item: (item[0].count("/"), item[0]))


def _covered(path: str, wanted: dict[str, bool]) -> bool:
    return any(path.startswith(m.rstrip("/") + "/") and not ro for m, ro in wanted.items())


def directories_to_make(task: dict, root: str) -> list[str]:
    """Host directories the mounts need (inputs are staged by then; the rest is made by the script)."""
    made = []
    for path, read_only in mounts(task):
        if not read_only:
            made.append(host_path(root, path))
    for entry in task["outputs"]:
        if not entry["path_prefix"] and entry["type"] == "FILE":
            made.append(host_path(root, posixpath.dirname(entry["path"])))
    for executor in task["executors"]:
        for key in ("stdout", "stderr"):
            if executor[key]:
                made.append(host_path(root, posixpath.dirname(executor[key])))
    return sorted(set(made))


def container_name(task_id: str, index: int) -> str:
    return f"{task_id}-{index}"


def run_command(runtime: str, command: str, task_id: str, index: int, executor: dict, task: dict, root: str,
                options: dict) -> list[str]:
    """The argv that runs one executor."""
    binds = [(host_path(root, path), path, read_only) for path, read_only in mounts(task)]
    resources = task.get("resources") or {}
    if runtime in SIF_RUNTIMES:
        argv = [command, "exec", "--containall", "--cleanenv", "--no-home"]
        for source, target, read_only in binds:
            argv += ["--bind", f"{source}:{target}:{'ro' if read_only else 'rw'}"]
        if executor["workdir"]:
            argv += ["--pwd", executor["workdir"]]
        for key, value in executor["env"].items():
            argv += ["--env", f"{key}={value}"]
        argv += list(options.get("extra") or [])
        image = executor["image"]
        return argv + [image if "://" in image or image.endswith(".sif") else f"docker://{image}", *executor["command"]]
    argv = [command, "run", "--rm", "--name", container_name(task_id, index), "--init",
            f"--network={options.get('network') or 'none'}", f"--pull={options.get('pull') or 'missing'}"]
    if executor["stdin"]:
        argv.append("-i")
    for source, target, read_only in binds:
        argv += ["-v", f"{source}:{target}:{'ro' if read_only else 'rw'}"]
    if executor["workdir"]:
        argv += ["-w", executor["workdir"]]
    for key, value in executor["env"].items():
        argv += ["-e", f"{key}={value}"]
    if resources.get("cpu_cores"):
        argv += ["--cpus", str(resources["cpu_cores"])]
    if resources.get("ram_gb"):
        argv += ["--memory", f"{int(resources['ram_gb'] * 1024)}m"]
    argv += list(options.get("extra") or [])
    return argv + [executor["image"], *executor["command"]]


def script(task_id: str, task: dict, job_directory: str, runtime: str, command: str, options: dict) -> str:
    """The command line of a TES task's job: every executor in turn, each one's start, end and exit code
    recorded in ``<job>/tes/<n>.start`` / ``<n>.end``; the first failing executor (not ``ignore_error``)
    ends the job with its exit code, failures of ``ignore_error`` executors are only recorded."""
    tes = os.path.join(job_directory, "tes")
    root = os.path.join(tes, "root")
    q = shlex.quote
    lines = [f"_tes={q(tes)}", "_tes_current=", "_tes_index=",
             # bash 5 has the time at hand; bash 4 (RHEL 8 compute nodes) asks date
             '_tes_now() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "$EPOCHREALTIME"; else date +%s.%N; fi; }',
             # a cancel: stop the running executor (further signals ignored meanwhile), record its end, stop
             "_tes_stop() { trap '' TERM INT HUP; [ -z \"$_tes_current\" ] || { _tes_kill; "
             "echo \"$(_tes_now) 143\" > \"$_tes/$_tes_index.end\"; }; exit 143; }",
             *_stop_function(runtime, command),
             "trap _tes_stop TERM INT HUP"]
    for path in directories_to_make(task, root):
        lines.append(f"mkdir -p {q(path)}")
    for index, executor in enumerate(task["executors"]):
        argv = " ".join(q(a) for a in run_command(runtime, command, task_id, index, executor, task, root, options))
        stdin = f" < {q(host_path(root, executor['stdin']))}" if executor["stdin"] else " < /dev/null"
        stdout = host_path(root, executor["stdout"]) if executor["stdout"] else os.path.join(tes, f"{index}.stdout")
        stderr = host_path(root, executor["stderr"]) if executor["stderr"] else os.path.join(tes, f"{index}.stderr")
        lines += [
            f"echo \"$(_tes_now)\" > \"$_tes/{index}.start\"",
            f"_tes_current={q(container_name(task_id, index))}; _tes_index={index}",
            f"{argv}{stdin} > {q(stdout)} 2> {q(stderr)} &",
            "_tes_pid=$!",
            "wait $_tes_pid; _tes_code=$?",  # wait returns at once on a signal, so the trap runs promptly
            "_tes_current=",
            f"echo \"$(_tes_now) $_tes_code\" > \"$_tes/{index}.end\"",
        ]
        if not executor["ignore_error"]:  # an ignored failure is only recorded (in <n>.end)
            lines.append("[ $_tes_code -eq 0 ] || exit $_tes_code")
    lines.append("exit 0")
    # a subshell: its exits end the executors' run, not the job script, which still records return_code. The job
    # script traps the signals too, only so that it waits for the subshell's cleanup before it ends (a shell runs
    # a trap when its foreground command is done; untrapped, it would die at once and the job be reported over
    # while its container still runs). The subshell starts with the default dispositions and sets its own trap.
    return "trap : TERM INT HUP\n(\n" + "\n".join(lines) + "\n)"


def _stop_function(runtime: str, command: str) -> list[str]:
    """``_tes_kill``: end the running executor and return once it is gone.

    OCI runtimes: a ``podman run`` / ``docker run`` client killed alone leaves its container running, so the
    container is removed by name, by a remover in its own session (the manager's SIGKILL to the job's process
    group after ``kill_grace_period`` cannot interrupt it), then the client is given time to exit, and a
    container created meanwhile (the cancel came while the client was still creating it) is removed too.
    apptainer / singularity: the executor's process ends with the group's signal; wait for it."""
    q = shlex.quote
    wait_client = ('_tes_n=0; while kill -0 "$_tes_pid" 2>/dev/null && [ $_tes_n -lt 100 ]; do '
                   'sleep 0.1; _tes_n=$((_tes_n + 1)); done')
    if runtime not in OCI_RUNTIMES:
        return ['_tes_kill() { kill -TERM "$_tes_pid" 2>/dev/null; ' + wait_client + '; }']
    remove = f"{q(command)} rm -f {'-t 0 ' if runtime == 'podman' else ''}\"$_tes_current\""
    exists = f"{q(command)} container inspect \"$_tes_current\" >/dev/null 2>&1"
    return [
        # setsid(1) from util-linux (no -w: RHEL 7's has none, and it forks only for a group leader, which a
        # command the subshell runs is not); without setsid the remover runs in the job's group
        "_tes_rm() { if command -v setsid >/dev/null 2>&1; then setsid " + remove + "; else " + remove + "; fi "
        ">/dev/null 2>&1 </dev/null; }",
        "_tes_kill() { _tes_rm; " + wait_client + "; ! " + exists + " || _tes_rm; }",
    ]


def stream_path(task: dict, job_directory: str, index: int, stream: str) -> str:
    executor = task["executors"][index]
    root = os.path.join(job_directory, "tes", "root")
    if executor.get(stream):
        return host_path(root, executor[stream])
    return os.path.join(job_directory, "tes", f"{index}.{stream}")


def output_sources(task: dict, job_directory: str) -> list[tuple[dict, str]]:
    """(output, host path or glob) of each output."""
    root = os.path.join(job_directory, "tes", "root")
    return [(entry, host_path(root, entry["path"])) for entry in task["outputs"]]


__all__ = ["RUNTIMES", "RUNTIME_FAILURES", "has_wildcards", "host_path", "mounts", "run_command", "script",
           "stream_path", "output_sources", "directories_to_make", "container_name"]
