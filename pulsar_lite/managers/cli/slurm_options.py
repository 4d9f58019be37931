"""How sbatch's options are spelled, for client_submit_params (managers/options.py): the short options' long
names, sbatch's abbreviations of long ones (getopt_long: ``--parti=x`` is ``--partition=x``), the flags, the
memory options that set one thing, the options the daemon sets, and what a client may ask for by default."""
from __future__ import annotations

from ..options import Dialect

#: sbatch's short options and their long names
SHORT = {"-A": "--account", "-a": "--array", "-B": "--extra-node-info", "-b": "--begin", "-C": "--constraint",
         "-c": "--cpus-per-task", "-D": "--chdir", "-d": "--dependency", "-e": "--error", "-F": "--nodefile",
         "-G": "--gpus", "-H": "--hold", "-i": "--input", "-J": "--job-name", "-k": "--no-kill",
         "-L": "--licenses", "-M": "--clusters", "-m": "--distribution", "-N": "--nodes", "-n": "--ntasks",
         "-O": "--overcommit", "-o": "--output", "-p": "--partition", "-Q": "--quiet", "-q": "--qos",
         "-S": "--core-spec", "-s": "--oversubscribe", "-t": "--time", "-V": "--version", "-v": "--verbose",
         "-W": "--wait", "-w": "--nodelist", "-x": "--exclude"}
#: what one task, one node or the job gets (cores, memory, GPUs) ...
SIZES = ("--cpus-per-task", "--mem", "--mem-per-cpu", "--mem-per-gpu", "--gres", "--gpus", "--gpus-per-node",
         "--gpus-per-socket", "--gpus-per-task", "--cpus-per-gpu", "--tres-per-task", "--mincpus", "--tmp")
#: ... and how many times: an administrator who set a size set the job's size (a client's ``--ntasks 64`` beside
#: the manager's ``-c 4`` would be 256 cores)
MULTIPLIERS = frozenset({"--ntasks", "--nodes", "--ntasks-per-node", "--ntasks-per-socket", "--ntasks-per-core",
                         "--ntasks-per-gpu", "--sockets-per-node", "--cores-per-socket", "--threads-per-core",
                         "--extra-node-info", "--exclusive", "--overcommit"})
DIALECT = Dialect(
    "Slurm", aliases={**SHORT, "--cluster": "--clusters"},
    long=frozenset(SHORT.values()) | {
        "--acctg-freq", "--batch", "--bb", "--bbf", "--comment", "--container", "--contiguous", "--cores-per-socket",
        "--cpu-freq", "--cpus-per-gpu", "--deadline", "--delay-boot", "--exclusive", "--export", "--export-file",
        "--get-user-env", "--gid", "--gpu-bind", "--gpu-freq", "--gpus-per-node", "--gpus-per-socket",
        "--gpus-per-task", "--gres", "--gres-flags", "--hint", "--ignore-pbs", "--kill-on-invalid-dep",
        "--mail-type", "--mail-user", "--mcs-label", "--mem", "--mem-bind", "--mem-per-cpu", "--mem-per-gpu",
        "--mincpus", "--network", "--nice", "--no-requeue", "--ntasks-per-core", "--ntasks-per-gpu",
        "--ntasks-per-node", "--ntasks-per-socket", "--open-mode", "--parsable", "--power", "--prefer",
        "--priority", "--profile", "--propagate", "--reboot", "--requeue", "--reservation", "--signal",
        "--sockets-per-node", "--spread-job", "--switches", "--test-only", "--thread-spec", "--threads-per-core",
        "--time-min", "--tmp", "--tres-per-task", "--uid", "--use-min-nodes", "--wckey", "--wrap"},
    flags=frozenset({"--hold", "--overcommit", "--quiet", "--oversubscribe", "--contiguous", "--exclusive",
                     "--no-kill", "--parsable", "--test-only", "--wait", "--spread-job", "--use-min-nodes",
                     "--reboot", "--verbose", "--requeue", "--no-requeue", "--ignore-pbs", "--get-user-env",
                     "--kill-on-invalid-dep", "--version"}),
    attached=True,
    exclusive=(frozenset({"--mem", "--mem-per-cpu", "--mem-per-gpu"}),),
    daemon=frozenset({
        "--job-name", "--output", "--error", "--input", "--open-mode",  # its name and streams
        "--chdir", "--export", "--export-file", "--get-user-env", "--uid", "--gid",  # its directory, environment, user
        "--array", "--clusters", "--wrap",  # what runs and where the daemon looks for it
        "--wait", "--test-only", "--parsable", "--version", "--quiet", "--verbose"}),  # what sbatch answers, and when
    implies=dict.fromkeys(SIZES, MULTIPLIERS))
#: what a client may ask for when the manager does not say: resources (never partition, account or QoS)
CLIENT_OPTIONS = ("--cpus-per-task", "--mem", "--mem-per-cpu", "--mem-per-gpu", "--time", "--ntasks", "--nodes",
                  "--ntasks-per-node", "--gres", "--gpus", "--tmp")
