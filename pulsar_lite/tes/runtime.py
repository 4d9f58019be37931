"""How a TES task's executors run: one job script that starts each executor in a container, one after the
other, and records when each started and ended and how it exited.

Every path a task names is a path inside the container. On the host each has a mirror under
``<job>/tes/root`` (``/data/out.txt`` -> ``<job>/tes/root/data/out.txt``): inputs are staged there before
the job runs, executors write outputs there, and the mirror's directories are bind-mounted at their
container paths (inputs read-only). podman and docker share one way to run a container; apptainer and
singularity another. A cancel (SIGTERM to the job's process group) removes the running container: a
``podman run`` client killed alone would leave its container running.

The executors write the mirror, so whatever the job script does there on the host (the directories it makes,
the files it opens as an executor's stdin, stdout and stderr) must not follow a symlink an earlier executor
left: the shell functions in ``SAFE_PATHS`` do it one directory at a time below the mirror's root, checked.
"""
from __future__ import annotations

import os
import posixpath
import shlex

from . import sandbox
from .safe_paths import SAFE_PATHS
from .protocol import has_wildcards

OCI_RUNTIMES = ("podman", "docker")
SIF_RUNTIMES = ("apptainer", "singularity")
#: apptainer image URIs fetched from a registry; any other URI (instance://, docker-daemon://, ...), a path and a
#: .sif file are the host's (policy.py: allowed only when tes_allowed_images names them)
REGISTRY_SCHEMES = ("docker", "oras", "library")
RUNTIMES = OCI_RUNTIMES + SIF_RUNTIMES
#: exit codes of ``podman run`` / ``docker run`` that mean the container could not be run at all
RUNTIME_FAILURES = {125: "the container runtime failed (image missing, bad option)",
                    126: "the command in the container could not be invoked",
                    127: "the command was not found in the container"}


def registry_image(image: str) -> bool:
    """Whether apptainer fetches ``image`` from a registry: a ``docker://``, ``oras://`` or ``library://`` URI,
    or a plain name (run as ``docker://<name>``); not a path, a ``.sif`` file or another URI."""
    if "://" in image:
        return image.split("://", 1)[0].lower() in REGISTRY_SCHEMES
    return not (image.endswith(".sif") or image.startswith(("/", ".", "~")))


#: characters podman's and docker's ``-v`` and apptainer's ``--bind`` take as separators: never in a mount
UNMOUNTABLE = frozenset(":,")


def host_path(root: str, container_path: str) -> str:
    """The host mirror of a container path (already checked absolute and free of '..')."""
    return os.path.join(root, container_path.lstrip("/"))


def literal_directory(path: str) -> str:
    """The directory a wildcard output's ``path`` matches in: its components before the first with a wildcard."""
    parts = path.split("/")
    first = next(n for n, part in enumerate(parts) if has_wildcards(part))
    return "/".join(parts[:first]) or "/"


def root_files(task: dict) -> list[str]:
    """Container paths directly under ``/`` that are mounted as files, not through their directory (the
    container's ``/`` is its image's): FILE outputs and executors' stdout/stderr there. The job script makes each
    an empty file before the first executor (``_tes_placeholders``: the runtimes mount only what exists), dated
    1970 so that one no executor wrote is told from an output (``staging``). An input there is its own file."""
    inputs = {entry["path"] for entry in task["inputs"]}
    paths = {entry["path"] for entry in task["outputs"] if not entry["path_prefix"] and entry["type"] == "FILE"}
    paths.update(executor[key] for executor in task["executors"] for key in ("stdout", "stderr") if executor[key])
    return sorted(path for path in paths - inputs if posixpath.dirname(path) == "/")


def mounts(task: dict) -> list[tuple[str, bool]]:
    """(container path, read-only) of everything bind-mounted, parents before children, no duplicates."""
    wanted: dict[str, bool] = {}

    def add(path: str, read_only: bool) -> None:
        if path == "/":
            raise ValueError("a task may not map the container's / (a wildcard output directly under / has "
                             "nothing to be mounted at: put its files in a directory)")
        if not path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"a mounted path must be absolute, without '..': {path[:100]!r}")
        if any(c in UNMOUNTABLE or ord(c) < 32 or ord(c) == 127 for c in path):
            raise ValueError(f"a mounted path may not hold ':', ',' or a control character (the container "
                             f"runtimes' mount syntax): {path[:100]!r}")
        wanted[path] = wanted.get(path, True) and read_only

    for entry in task["inputs"]:
        add(entry["path"], True)
    for entry in task["outputs"]:
        if entry["path_prefix"]:  # the directory the wildcard matches in (path_prefix only shapes the URLs)
            add(literal_directory(entry["path"]), False)
        elif entry["type"] == "DIRECTORY":
            add(entry["path"], False)
        else:
            add(_holder(entry["path"]), False)
    for volume in task["volumes"]:
        add(volume, False)
    for executor in task["executors"]:
        for key in ("stdout", "stderr"):
            if executor[key] and not _covered(executor[key], wanted):
                add(_holder(executor[key]), False)
    return sorted(wanted.items(), key=lambda item: (item[0].count("/"), item[0]))


def _holder(path: str) -> str:
    """What is mounted for a file the executors write: its directory, or itself directly under ``/``."""
    parent = posixpath.dirname(path)
    return path if parent == "/" else parent


def _covered(path: str, wanted: dict[str, bool]) -> bool:
    return any(path.startswith(m.rstrip("/") + "/") and not ro for m, ro in wanted.items())


def mounts_to_check(task: dict) -> list[tuple[str, str]]:
    """("d" or "f", container path) of each mount an executor can reach the way to: one below a writable
    mount, whose host source a container may have renamed and replaced by a symlink (to a host directory, to
    app.yml). The job script checks each before every executor starts (``_tes_binds``); a mount no writable
    mount contains cannot be changed by the task, and costs nothing."""
    files = {entry["path"] for entry in task["inputs"] if entry["type"] == "FILE"}
    every = mounts(task)
    writable = [path for path, read_only in every if not read_only]
    return [("f" if path in files else "d", path) for path, _ in every
            if any(path.startswith(parent.rstrip("/") + "/") for parent in writable)]


def directories_to_make(task: dict, root: str) -> list[str]:
    """Host directories the mounts need (inputs are staged by then; the rest is made by the script; the files
    mounted directly under ``/`` are ``root_files``)."""
    files = set(root_files(task)) | {entry["path"] for entry in task["inputs"] if entry["type"] == "FILE"}
    made = [path for path, read_only in mounts(task) if not read_only and path not in files]
    for entry in task["outputs"]:
        if not entry["path_prefix"] and entry["type"] == "FILE":
            made.append(posixpath.dirname(entry["path"]))
    for executor in task["executors"]:
        for key in ("stdout", "stderr"):
            if executor[key]:
                made.append(posixpath.dirname(executor[key]))
    return sorted({host_path(root, path) for path in made if path != "/"})


def container_name(task_id: str, index: int) -> str:
    return f"{task_id}-{index}"


def run_command(runtime: str, command: str, task_id: str, index: int, executor: dict, task: dict, root: str,
                options: dict) -> list[str]:
    """The argv that runs one executor."""
    binds = [(host_path(root, path), path, read_only) for path, read_only in mounts(task)]
    if any(c in UNMOUNTABLE for c in root):  # the operator's staging_directory
        raise ValueError(f"the job directory {root!r} holds ':' or ',': the container runtime cannot mount it")
    resources = task.get("resources") or {}
    if runtime in SIF_RUNTIMES:
        argv = [command, "exec", "--containall", "--cleanenv", "--no-home", *sandbox.sif_options(options)]
        for source, target, read_only in binds:
            argv += ["--bind", f"{source}:{target}:{'ro' if read_only else 'rw'}"]
        if executor["workdir"]:
            argv += ["--pwd", executor["workdir"]]
        for key, value in executor["env"].items():
            argv += ["--env", f"{key}={value}"]
        argv += list(options.get("extra") or [])
        image = executor["image"]
        return argv + [image if "://" in image or not registry_image(image) else f"docker://{image}",
                       *executor["command"]]
    # --sig-proxy=false: the client passes no signal on to the container. A cancel removes the container by name
    # (_tes_kill); a signal the scheduler sends the whole job that the job script ignores (Grid Engine's SIGUSR1
    # before a suspend) must not reach the executor through the client either.
    argv = [command, "run", "--rm", "--name", container_name(task_id, index), "--init", "--sig-proxy=false",
            f"--network={options.get('network') or 'none'}", f"--pull={options.get('pull') or 'missing'}",
            *sandbox.oci_options(options)]
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
    lines = [f"_tes={q(tes)}", "_tes_current=", "_tes_index=", "_tes_pid=", "_tes_prev=",
             # the time in _tes_t: bash 5 has it at hand, bash 4 (RHEL 8 compute nodes) asks date. Not in a $(...):
             # that subshell would die at a cancel's signal and leave the time out of <n>.start / <n>.end
             '_tes_now() { if [ -n "${EPOCHREALTIME:-}" ]; then _tes_t=$EPOCHREALTIME; else _tes_t=$(date +%s.%N); fi; }',
             # a cancel: stop the running executor (further signals ignored meanwhile), record its end, stop. A
             # signal between starting the executor and taking its pid: $! is the executor if it is not the last one
             "_tes_stop() { trap '' TERM INT HUP USR2; [ -n \"$_tes_pid\" ] || [ \"$!\" = \"$_tes_prev\" ] || _tes_pid=$!; "
             "[ -z \"$_tes_current\" ] || { _tes_kill; _tes_now; echo \"$_tes_t 143\" > \"$_tes/$_tes_index.end\"; }; "
             "exit 143; }",
             _kill_function(runtime, command),
             "trap _tes_stop TERM INT HUP USR2"]
    made = [host_path("/", os.path.relpath(path, root)) for path in directories_to_make(task, root)]
    checked = mounts_to_check(task)
    placeholders = root_files(task)
    user = sandbox.user_setup(runtime, command, options)
    lines += [user] if user else []
    if made or checked or placeholders or any(e[key] for e in task["executors"] for key in ("stdin", "stdout", "stderr")):
        # (a task with neither spends no fork on this)
        lines += [SAFE_PATHS, f"[ -d {q(root)} ] || mkdir -p {q(root)}",
                  f"_tes_root=$(cd -P -- {q(root)} && \"$_tes_pwd\" -P) || exit 1", ': > "$_tes/refused"']
        lines += [f"_tes_mkdir {q(path)}" for path in made]
        if placeholders:
            lines.append("_tes_placeholders " + " ".join(q(path.lstrip("/")) for path in placeholders))
        tops = sandbox.writable_tops(mounts(task))
        if user and tops:  # the job runs as root, the container as another user: the task's directories are its
            lines += [sandbox.GIVE, '[ -z "$_tes_uid" ] || _tes_give ' + " ".join(q(path) for path in tops)]
        lines.append('cd -- "$_tes_wd" 2>/dev/null || cd /')
    for index, executor in enumerate(task["executors"]):
        argv = " ".join(a if a is sandbox.USER_OPTION else q(a)
                        for a in run_command(runtime, command, task_id, index, executor, task, root, options))
        lines += [
            f"_tes_now; echo \"$_tes_t\" > \"$_tes/{index}.start\"",
            f"_tes_current={q(container_name(task_id, index))}; _tes_index={index}",
            f"{_launch(argv, executor, index, checked)} &",
            "_tes_pid=$!",
            "wait $_tes_pid; _tes_code=$?",  # wait returns at once on a signal, so the trap runs promptly
            "_tes_prev=$_tes_pid; _tes_pid=; _tes_current=",
            f"_tes_now; echo \"$_tes_t $_tes_code\" > \"$_tes/{index}.end\"",
        ]
        if not executor["ignore_error"]:  # an ignored failure is only recorded (in <n>.end)
            lines.append("[ $_tes_code -eq 0 ] || exit $_tes_code")
    lines.append("exit 0")
    return SUPERVISE.replace("@EXECUTORS@", "\n".join(lines))


def _launch(argv: str, executor: dict, index: int, checked: list[tuple[str, str]] = ()) -> str:
    """Shell: start one executor, the mounts an earlier one could have changed checked first (``checked``:
    ``_tes_binds``), its stdin/stdout/stderr opened on the host. A stream without a path is
    ``/dev/null`` or a file in ``<job>/tes`` (no container writes there): a plain redirection. A stream with
    a path in the mirror is opened by ``_tes_in`` / ``_tes_out`` in the executor's subshell, which then
    becomes the container's client; the same path for stdout and stderr is one file (one offset), as a
    shell's ``> f 2>&1``."""
    q = shlex.quote
    opens, redirections = [], []
    if checked:
        opens.append("_tes_binds " + " ".join(q(f"{kind}:{path}") for kind, path in checked))

    def where(path: str) -> str:  # directory (container path; '' for /), name, path, as _tes_in / _tes_out take them
        return f"{q(posixpath.dirname(path).rstrip('/'))} {q(posixpath.basename(path))} {q(path)}"

    if executor["stdin"]:
        opens.append(f"_tes_in {where(executor['stdin'])}")
        redirections.append("<&3 3<&-")
    else:
        redirections.append("</dev/null")
    if executor["stdout"]:
        opens.append(f"_tes_out 4 {where(executor['stdout'])} stdout")
        redirections.append(">&4 4>&-")
    else:
        redirections.append(f'>"$_tes/{index}.stdout"')
    if executor["stderr"] and executor["stderr"] == executor["stdout"]:
        redirections.append("2>&1")
    elif executor["stderr"]:
        opens.append(f"_tes_out 5 {where(executor['stderr'])} stderr")
        redirections.append("2>&5 5>&-")
    else:
        redirections.append(f'2>"$_tes/{index}.stderr"')
    if not opens:
        return f"{argv} {' '.join(redirections)}"
    # the working directory back to the job's (the checks left it in the mirror) before the client starts
    return (f"( {' && '.join(opens)} && {{ cd -- \"$_tes_wd\" 2>/dev/null || cd /; }} && "
            f"exec {argv} {' '.join(redirections)} )")


#: How the job script runs the executors' subshell. In the background, with the job script passing a signal on
#: and waiting until the subshell is gone: a cancel's signal may reach the job script alone (HTCondor's soft
#: kill goes to the job's top process only), and the job must not end (and be reported over) while the subshell
#: still removes its container. Its status becomes the command line's, which the job script records. SIGUSR1 is
#: ignored (by every process of the job, inherited): Grid Engine with ``-notify`` sends it before it suspends a
#: job, and a shell would die of it, ending the task while its container runs on.
SUPERVISE = """_tes_ret() { return $1; }
trap '' USR1
(
@EXECUTORS@
) &
_tes_sub=$!
trap 'kill -TERM $_tes_sub 2>/dev/null' TERM INT HUP USR2
while :; do wait $_tes_sub; _tes_rc=$?; kill -0 $_tes_sub 2>/dev/null || break; done
trap - TERM INT HUP USR2
_tes_ret $_tes_rc"""


def _kill_function(runtime: str, command: str) -> str:
    """``_tes_kill``: end the running executor and return once it is gone.

    OCI runtimes: a ``podman run`` / ``docker run`` client killed alone leaves its container running, so the
    container is removed by name, again every second while the client lives (it may still be creating it when
    the cancel comes), and once more if it still exists when the client has gone (at most about ten seconds).
    All of that runs in a session of its own, so that the manager's SIGKILL to the job's process group after
    ``kill_grace_period`` cannot cut it short. apptainer / singularity: the executor's process ends with the
    signal; wait for it."""
    if runtime not in OCI_RUNTIMES:
        return '_tes_kill() { [ -z "$_tes_pid" ] || kill -TERM "$_tes_pid" 2>/dev/null; ' + _wait_client() + '; }'
    q = shlex.quote
    remove = f"{q(command)} rm -f {'-t 0 ' if runtime == 'podman' else ''}\"$_tes_current\" >/dev/null 2>&1"
    exists = f"{q(command)} container inspect \"$_tes_current\" >/dev/null 2>&1"
    sequence = f"_tes_current=$1; _tes_pid=$2; {remove}; {_wait_client(every_second=remove)}; ! {exists} || {remove}"
    # setsid(1) from util-linux (no -w: RHEL 7's has none, and it forks only for a group leader, which a command
    # the subshell runs is not); without setsid the same sequence runs in the job's group
    return ("_tes_kill() { if command -v setsid >/dev/null 2>&1; then _tes_s=setsid; else _tes_s=; fi; "
            f"$_tes_s bash -c {q(sequence)} _tes_kill \"$_tes_current\" \"$_tes_pid\" </dev/null >/dev/null 2>&1; }}")


def _wait_client(every_second: str = "") -> str:
    """Shell: wait (at most about ten seconds) while the executor's process ``$_tes_pid`` lives, running
    ``every_second`` each second meanwhile."""
    also = f" [ $((_tes_n % 10)) -ne 0 ] || {every_second};" if every_second else ""
    return ('_tes_n=0; while [ -n "$_tes_pid" ] && kill -0 "$_tes_pid" 2>/dev/null && [ $_tes_n -lt 100 ]; '
            f'do sleep 0.1; _tes_n=$((_tes_n + 1));{also} done')


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


__all__ = ["RUNTIMES", "RUNTIME_FAILURES", "has_wildcards", "host_path", "mounts", "mounts_to_check", "run_command", "script",
           "stream_path", "output_sources", "directories_to_make", "container_name"]
