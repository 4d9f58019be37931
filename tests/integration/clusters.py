"""The real HTCondor pool (scripts/ci/condor-up.sh) and Grid Engine cell (scripts/ci/sge-up.sh) as the
cluster-manager tests use them: whether each is up, the daemon's environment, queue membership, and
deletes done behind the daemon's back."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CONDOR_ROOT = Path(os.environ.get("CONDOR_CHROOT", "/srv/trixie"))
CONDOR_CONFIG = "/srv/condor-client/condor_config"
CONDOR_BIN = Path("/srv/condor-client/bin")
IDMAP = Path(__file__).resolve().parents[2] / "scripts" / "ci" / "condor_idmap_mount.py"
DRMAA_ENV = {
    "DRMAA_LIBRARY_PATH": "/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0",
    "SGE_ROOT": "/var/lib/gridengine",
    "SGE_CELL": "default",
    # libdrmaa needs static TLS the interpreter does not reserve; it must be set before python starts
    "GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=4096",
}


def condor_ready() -> bool:
    if not (Path(CONDOR_CONFIG).exists() and (CONDOR_BIN / "condor_q").exists()):
        return False
    try:
        import htcondor2  # noqa: F401
    except ImportError:
        return False
    done = subprocess.run([str(CONDOR_BIN / "condor_status"), "-schedd", "-af", "Name"], capture_output=True,
                          text=True, timeout=30, cwd="/")
    return done.returncode == 0 and bool(done.stdout.strip())


def condor(*args: str) -> subprocess.CompletedProcess:
    """An HTCondor tool through condor-up.sh's host wrapper (runs in the pool as its job owner)."""
    return subprocess.run([str(CONDOR_BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=60,
                          cwd="/")


def condor_queue() -> set[str]:
    """ClusterIds still in the queue (condor_q), whatever their state."""
    done = condor("condor_q", "-allusers", "-af", "ClusterId")
    return {line.strip() for line in done.stdout.splitlines() if line.strip()}


def share_with_condor(directory: Path) -> Path:
    """Make ``directory`` appear at the same path inside the pool's chroot, owned by the job owner (an
    id-mapped mount: what the daemon, root here, writes is the job owner's inside, and the reverse)."""
    target = Path(str(CONDOR_ROOT) + str(directory))
    subprocess.run([sys_python(), str(IDMAP), "mount", str(directory), str(target), "--host-uid", "0",
                    "--job-uid", os.environ.get("CONDOR_UID", "2001")], check=True, capture_output=True)
    return target


def unshare_with_condor(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


def sys_python() -> str:
    return shutil.which("python3") or "/usr/bin/python3"


def sge_ready() -> bool:
    if not shutil.which("qstat") or not Path(DRMAA_ENV["DRMAA_LIBRARY_PATH"]).exists():
        return False
    done = subprocess.run(["qstat", "-f"], capture_output=True, text=True, timeout=30)
    return done.returncode == 0 and "all.q@" in done.stdout


def sge_queue() -> set[str]:
    """Job numbers qstat still lists (pending, running or in error)."""
    done = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True, timeout=30)
    ids = set()
    for line in done.stdout.splitlines()[2:]:
        fields = line.split()
        if fields and fields[0].isdigit():
            ids.add(fields[0])
    return ids
