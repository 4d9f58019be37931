"""The job script (``command.sh``): Galaxy's job environment contract.

The script runs in ``working/`` with a clean environment plus the client's
``env`` definitions, exports ``_GALAXY_JOB_HOME_DIR``/``_GALAXY_JOB_TMP_DIR``,
``GALAXY_SLOTS`` and friends, sources dependency set-up, runs the command line
and writes its exit code to ``<job>/return_code``.
"""
from __future__ import annotations

import os
import shlex

from ..errors import BadRequest

SCRIPT_NAME = "command.sh"


def env_statement(entry: dict) -> str:
    """Render one client ``env`` definition (file > execute > name/value)."""
    if not isinstance(entry, dict):
        raise BadRequest(f"invalid env definition {entry!r}: expected an object")
    if entry.get("file"):
        return f'. "{_dq(str(entry["file"]))}"'
    if entry.get("execute"):
        return str(entry["execute"])
    name = entry.get("name")
    if not name or not str(name).replace("_", "a").isalnum() or str(name)[0].isdigit():
        raise BadRequest(f"invalid env definition {entry!r}: needs a valid 'name'")
    value = "" if entry.get("value") is None else str(entry["value"])
    if entry.get("raw"):
        return f"{name}={value}; export {name}"
    return f'{name}="{_dq(value)}"; export {name}'


def _dq(value: str) -> str:
    """Escape for use inside double quotes in bash."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _q(path: str) -> str:
    return shlex.quote(path)


SLOTS_BLOCK = r"""
if [ -n "$SLURM_CPUS_ON_NODE" ]; then
    GALAXY_SLOTS=$SLURM_CPUS_ON_NODE
elif [ -n "$SLURM_NTASKS" ] || [ -n "$SLURM_CPUS_PER_TASK" ]; then
    GALAXY_SLOTS=$(( ${SLURM_NTASKS:-1} * ${SLURM_CPUS_PER_TASK:-1} ))
elif [ -n "$NSLOTS" ]; then
    GALAXY_SLOTS=$NSLOTS
elif [ -n "$NCPUS" ]; then
    GALAXY_SLOTS=$NCPUS
elif [ -n "$PBS_NCPUS" ]; then
    GALAXY_SLOTS=$PBS_NCPUS
elif [ -f "$PBS_NODEFILE" ]; then
    GALAXY_SLOTS=$(wc -l < "$PBS_NODEFILE")
elif [ -n "$LSB_DJOB_NUMPROC" ]; then
    GALAXY_SLOTS=$LSB_DJOB_NUMPROC
elif [ -n "$GALAXY_SLOTS" ]; then
    :
else
    GALAXY_SLOTS=1
    unset GALAXY_SLOTS_CONFIGURED
fi
[ -n "$GALAXY_SLOTS_CONFIGURED" ] || [ "$GALAXY_SLOTS" = 1 ] || GALAXY_SLOTS_CONFIGURED=1
export GALAXY_SLOTS
"""


#: GALAXY_PYTHON = the first python, else python3, on PATH (what `command -v` finds), without a subshell
FIND_PYTHON = r"""
_galaxy_find_python() {
    local IFS=: dir
    for dir in $PATH; do
        if [ -x "${dir:-.}/$1" ] && [ ! -d "${dir:-.}/$1" ]; then GALAXY_PYTHON="${dir:-.}/$1"; return 0; fi
    done
    return 1
}
GALAXY_PYTHON=
_galaxy_find_python python || _galaxy_find_python python3
unset -f _galaxy_find_python
export GALAXY_PYTHON
""".strip()


def render(*, job_directory: str, command_line: str, env: list | None = None,
           manager_env: dict[str, str] | None = None, dependency_commands: list[str] | None = None,
           tmp_dir: str | None = None, galaxy_virtual_env: str | None = None,
           galaxy_home: str | None = None, preserve_galaxy_python_environment: bool = False,
           headers: str = "") -> str:
    working = os.path.join(job_directory, "working")
    metadata = os.path.join(job_directory, "metadata")
    home = os.path.join(job_directory, "home")
    tmp = tmp_dir or os.path.join(job_directory, "tmp")
    env_lines = [env_statement(e) for e in (env or [])]
    env_lines += [f'{name}="{_dq(value)}"; export {name}' for name, value in (manager_env or {}).items()]
    lines = ["#!/bin/bash"]
    if headers:
        lines.append(headers)
    lines += [
        f"echo $$ > {_q(os.path.join(job_directory, 'pid'))}",
        f"_GALAXY_JOB_DIR={_q(working)}",
        f"_GALAXY_JOB_HOME_DIR={_q(home)}",
        f"_GALAXY_JOB_TMP_DIR={_q(tmp)}",
        "export _GALAXY_JOB_DIR _GALAXY_JOB_HOME_DIR _GALAXY_JOB_TMP_DIR",
        *env_lines,
        # builtins only where a line runs for every job: each external command is a fork + exec
        '[ -d "$_GALAXY_JOB_TMP_DIR" ] || mkdir -p "$_GALAXY_JOB_TMP_DIR"',
        '[ -d "$_GALAXY_JOB_HOME_DIR" ] || mkdir -p "$_GALAXY_JOB_HOME_DIR"',
    ]
    if galaxy_virtual_env:
        lines.append(f"GALAXY_VIRTUAL_ENV={_q(galaxy_virtual_env)}; export GALAXY_VIRTUAL_ENV")
        lines.append('if [ -f "$GALAXY_VIRTUAL_ENV/bin/activate" ] && [ "$VIRTUAL_ENV" != "$GALAXY_VIRTUAL_ENV" ]; '
                     'then . "$GALAXY_VIRTUAL_ENV/bin/activate"; fi')
    if galaxy_home:
        lines.append(f"GALAXY_LIB={_q(os.path.join(galaxy_home, 'lib'))}; export GALAXY_LIB")
        if preserve_galaxy_python_environment:
            lines.append('PYTHONPATH="$GALAXY_LIB${PYTHONPATH:+:$PYTHONPATH}"; export PYTHONPATH')
    lines += [
        SLOTS_BLOCK.strip(),
        'export PYTHONWARNINGS="ignore"',
        'TMPDIR="${TMPDIR:-${TMP:-${TEMP:-$_GALAXY_JOB_TMP_DIR}}}"',
        'TMP="${TMP:-$TMPDIR}"',
        'TEMP="${TEMP:-$TMPDIR}"',
        "export TMPDIR TMP TEMP",
        FIND_PYTHON,
        f"cd {_q(working)} || exit 1",
        f'echo "$GALAXY_SLOTS" > {_q(os.path.join(metadata, "__instrument_core_galaxy_slots"))}',
        f'[ -z "$GALAXY_MEMORY_MB" ] || echo "$GALAXY_MEMORY_MB" > '
        f'{_q(os.path.join(metadata, "__instrument_core_galaxy_memory_mb"))}',
        f"printf '%(%s)T\\n' -1 > {_q(os.path.join(metadata, '__instrument_core_epoch_start'))}",
    ]
    lines += list(dependency_commands or [])
    lines += [
        command_line,
        "return_code=$?",
        f"printf '%(%s)T\\n' -1 > {_q(os.path.join(metadata, '__instrument_core_epoch_end'))}",
        f"echo $return_code > {_q(os.path.join(job_directory, 'return_code'))}",
        "exit $return_code",
        "",
    ]
    return "\n".join(lines)
