"""The shell functions of a TES job script for the paths it handles on the host, in the task's mirror
(``runtime.script`` puts them in every job script that needs them)."""

#: Shell functions of the job script for the paths it handles in the task's mirror on the host, which the
#: executors write: one may leave a symlink (to the daemon account's ~/.bashrc, to app.yml) where the next one's
#: stdout, stderr or stdin is, or in place of a directory on the way to it, and a plain redirection would follow
#: it. Nothing here follows a symlink out of the mirror (``$_tes_root``, its physical path on this node):
#:
#: * ``_tes_dir D``: the working directory becomes ``<root>D``, checked to be that very directory: ``cd -P``
#:   goes wherever symlinks on the way lead, and getcwd (``pwd -P`` run as a program: bash's builtin works it
#:   out from the path again) says where it arrived. Once there, the directory can move only within the
#:   container's mount it is in (a rename across mounts fails), so what is then opened by name in it is in the
#:   task's own directory, whatever runs meanwhile.
#: * ``_tes_out FD D NAME PATH STREAM``: a new file NAME in D on fd 4 or 5. What is there is removed first (a
#:   symlink itself, not its target; a directory stays, and the open fails), then created with noclobber: bash
#:   opens with ``O_CREAT|O_EXCL``, which never follows a symlink. A file that is the task's own is replaced
#:   (a new inode), as a redirection would truncate it.
#: * ``_tes_in D NAME PATH``: NAME in D on fd 3, only a regular file and not a symlink; after the open, the
#:   descriptor's file must be the one NAME names (device and inode, NAME not followed): should a symlink be
#:   swapped in between the check and the open, the descriptor is closed unread.
#: * ``_tes_binds KIND:PATH...``: before an executor's container starts, the host source of each of its mounts
#:   that lies below a writable mount (where an earlier executor may have renamed a directory and put a
#:   symlink in its place) is that very directory (``d``: ``_tes_dir``) or a regular file, not a symlink, in
#:   that very directory (``f``). No process of the task runs then (the earlier executor's container is gone),
#:   so the runtime resolves the same path when it mounts it.
#: * ``_tes_mkdir D``: ``<root>D`` made one directory at a time, each checked with ``_tes_dir`` before the
#:   next is made in it (``mkdir -p`` would follow a symlink an earlier run of the job left).
#: * ``_tes_placeholders NAME...``: each file mounted directly under ``/`` (``runtime.root_files``) made anew
#:   in the mirror's root, empty and dated 1970 (what is there is removed first: what an earlier run of the job
#:   left; no container can change the root's entries, only the contents of the files mounted).
#:
#: A refusal is a line in ``<job>/tes/refused`` (the task's ``system_logs``) and exit status 1, as a shell's
#: failed redirection: the executor did not run, and the task is an ``EXECUTOR_ERROR``. Only bash, coreutils
#: (``pwd``, ``rm``, ``mkdir``, ``stat``) and /proc are needed: a cluster node that runs the job script has them,
#: with or without pulsar_lite or Python.
SAFE_PATHS = r"""_tes_wd=$PWD
_tes_pwd=$(type -P pwd) || _tes_pwd=/bin/pwd
_tes_refuse() { printf '%s\n' "$1" >> "$_tes/refused"; exit 1; }
_tes_dir() { cd -P -- "$_tes_root$1" 2>/dev/null && [ "$("$_tes_pwd" -P 2>/dev/null)" = "$_tes_root$1" ]; }
_tes_same() {
  local named open
  named=$(stat -c %d:%i -- "$1" 2>/dev/null) && open=$(stat -L -c %d:%i "/proc/self/fd/$2" 2>/dev/null) &&
    [ -n "$named" ] && [ "$named" = "$open" ]
}
_tes_in() {
  _tes_dir "$1" && [ ! -L "$2" ] && [ -f "$2" ] && { exec 3< "$2"; } 2>/dev/null && _tes_same "$2" 3 ||
    _tes_refuse "executor $_tes_index: stdin $3 was not read: it is not a regular file in a directory of the task's own (a symlink, or missing)"
}
_tes_out() {
  local opened=1
  if _tes_dir "$2" && rm -f -- "$3" 2>/dev/null; then
    set -C
    if [ "$1" = 4 ]; then { exec 4> "$3"; } 2>/dev/null; else { exec 5> "$3"; } 2>/dev/null; fi
    opened=$?
    set +C
  fi
  # the container's user (not root) may read and append to it, as to a file of its own
  [ $opened -eq 0 ] && _tes_same "$3" "$1" && { [ -z "${_tes_uid:-}" ] || chown -h -- "$_tes_uid" "$3" 2>/dev/null || :; } ||
    _tes_refuse "executor $_tes_index: $5 $4 was not written: it could not be made a new file in a directory of the task's own (a symlink on its way, or a directory in its place)"
}
_tes_binds() {
  local m p
  for m; do
    p=${m#?:}
    case $m in
      d:*) _tes_dir "$p" ;;
      *) _tes_dir "${p%/*}" && [ ! -L "${p##*/}" ] && [ -f "${p##*/}" ] ;;
    esac || _tes_refuse "executor $_tes_index: $p was not mounted: it is not a $([ "${m%%:*}" = d ] && echo directory || echo file) of the task's own (a symlink on its way, or missing)"
  done
}
_tes_placeholders() {
  local name made
  for name; do
    made=1
    if _tes_dir "" && rm -f -- "$name" 2>/dev/null; then
      set -C; { : > "$name"; } 2>/dev/null; made=$?; set +C
    fi
    [ $made -eq 0 ] && touch -c -m -d @0 -- "$name" 2>/dev/null ||
      _tes_refuse "/$name could not be made an empty file of the task's own (a directory in its place?): no executor ran"
  done
}
_tes_mkdir() {
  local made= name rest=${1#/}
  while _tes_dir "$made"; do
    [ -n "$rest" ] || return 0
    name=${rest%%/*}
    if [ "$name" = "$rest" ]; then rest=; else rest=${rest#*/}; fi
    [ -d "$name" ] || mkdir -- "$name" 2>/dev/null
    made=$made/$name
  done
  _tes_refuse "$1 could not be made a directory of the task's own (a symlink or a file on its way, left by an earlier run of the task?): no executor ran"
}"""
