"""How a TES executor's container is confined: hardened by default, each part relaxable by the operator in
app.yml (``tes_container_*``), never by a task.

podman and docker: every capability dropped (``--cap-drop=all``; ``tes_container_capabilities`` adds some
back), ``--security-opt=no-new-privileges`` (a setuid file gains nothing), ``--pids-limit`` (a fork bomb
stays in its container), ``--network`` none (``tes_container_network``), and a user other than root
(``tes_container_user``, decided by the job script where it runs, since that is where the container starts):

* ``auto`` (the default): a job script running as root gives the container ``nobody`` (65534:65534) and
  first hands the task's writable mounts to that user (``chown -R -P``: no symlink followed, while no
  process of the task runs); a job script running as another user gives the container that user (its files
  stay the job account's, which can then remove them), through ``--userns=keep-id`` under rootless podman (a
  plain ``--user`` there maps to a subordinate id that owns nothing of the job's).
* ``UID:GID``: that user (the writable mounts handed to it when the job runs as root).
* ``keep-id``: ``--userns=keep-id`` (rootless podman).
* ``image``: the image's own user, often root (the runtime's default).

apptainer and singularity run as the job's user already, in a container of their own (``--containall``);
they get ``--no-privs`` and, unless ``tes_container_network`` is ``host``, a network namespace of their own
(``--net --network none``, or the network named): where the site's apptainer cannot make one, the executor
fails rather than run on the host's network.
"""
from __future__ import annotations

import os
import shlex

#: the user a container gets when its job script runs as root (``tes_container_user: auto``)
ROOT_FALLBACK = "65534:65534"
DEFAULT_PIDS_LIMIT = 4096
#: in an argv from :func:`oci_options`: the job script's own ``--user`` / ``--userns`` option, one word
USER_OPTION = '"$_tes_user"'


def oci_options(options: dict) -> list[str]:
    """podman / docker run options that confine the container (``options``: the service's, from app.yml)."""
    argv = []
    capabilities = [str(c) for c in options.get("capabilities") or []]
    if capabilities != ["runtime-default"]:
        argv.append("--cap-drop=all")
        argv += [f"--cap-add={capability}" for capability in capabilities]
    if options.get("no_new_privileges", True):
        argv.append("--security-opt=no-new-privileges")
    pids = options.get("pids_limit", DEFAULT_PIDS_LIMIT)
    if pids:
        argv.append(f"--pids-limit={int(pids)}")
    if (options.get("user") or "auto") != "image":
        argv.append(USER_OPTION)
    return argv


def sif_options(options: dict) -> list[str]:
    """apptainer / singularity exec options beyond ``--containall --cleanenv --no-home``."""
    argv = [] if options.get("capabilities") == ["runtime-default"] else ["--no-privs"]
    network = options.get("network") or "none"
    if network != "host":
        argv += ["--net", "--network", network]
    return argv


def user_setup(runtime: str, command: str, options: dict) -> str:
    """Shell for the job script: ``_tes_user``, the one run option that sets the container's user, and, when
    the writable mounts must be handed to that user first (the job runs as root), ``_tes_uid``. Empty when
    the image's user is wanted or the runtime is not podman / docker."""
    user = options.get("user") or "auto"
    if user == "image" or runtime not in ("podman", "docker"):
        return ""
    if user == "keep-id":
        return "_tes_user=--userns=keep-id; _tes_uid="
    if user != "auto":
        return (f"_tes_user={shlex.quote('--user=' + user)}; _tes_uid=; "
                f"[ \"$EUID\" -ne 0 ] || [ {shlex.quote(user.split(':')[0])} = 0 ] || _tes_uid={shlex.quote(user)}")
    rootless = runtime == "podman" and os.path.basename(command) == "podman"
    other = ('if [ -z "${CONTAINER_HOST:-}${CONTAINER_CONNECTION:-}" ]; then _tes_user=--userns=keep-id; '
             'else _tes_user="--user=$(id -u):$(id -g)"; fi' if rootless else '_tes_user="--user=$(id -u):$(id -g)"')
    return (f'_tes_uid=; if [ "$EUID" -eq 0 ]; then _tes_uid={ROOT_FALLBACK}; _tes_user=--user=$_tes_uid; '
            f"else {other}; fi")


def writable_tops(mounts: list[tuple[str, bool]]) -> list[str]:
    """The writable mounts not inside another writable mount (``chown -R`` of each covers the rest)."""
    writable = [path for path, read_only in mounts if not read_only]
    return [path for path in writable
            if not any(path.startswith(other.rstrip("/") + "/") for other in writable if other != path)]


#: Shell for the job script (with SAFE_PATHS): ``_tes_give D...`` hands the writable mounts' directories, and
#: all in them, to the container's user ``$_tes_uid``, each checked with ``_tes_dir`` and ``chown -R -P``
#: (a symlink is changed itself, never followed), before any executor runs; a file mounted directly under ``/``
#: (``runtime.root_files``) must be a regular file, not a symlink, in the mirror's root.
GIVE = r"""_tes_give() {
  local d tops=()
  for d; do
    _tes_dir "$d" || { [ "${d%/*}" = "" ] && _tes_dir "" && [ ! -L "${d#/}" ] && [ -f "${d#/}" ]; } ||
      _tes_refuse "$d could not be given to the container's user $_tes_uid (a symlink on its way?): no executor ran"
    tops+=("$_tes_root$d")
  done
  chown -R -P -- "$_tes_uid" "${tops[@]}" 2>/dev/null ||
    _tes_refuse "the task's writable directories could not be given to the container's user $_tes_uid: no executor ran"
}"""
