"""Found by adversarial review 3 (now fixed): a client word that is a short *flag* with a value glued on (``-s-pgpu``, ``-H-Jevil``)
is read by the dialect as the flag with a value; the directive is written back as two words (``-s -pgpu``),
which sbatch/qsub read as two options. So a client allowed one harmless flag (``-s``/``--oversubscribe``,
``-H``/``--hold``, ``-k``; PBS ``-h``), or any client under ``allow``, sets the manager's partition, account and
QoS and the daemon's job name, streams, array and ``--wait``. Now a cluster of short options is read as getopt
reads it (``-sHpgpu``: ``-s``, ``-H``, ``-p gpu``) and a word whose flag is followed by what is not an option
letter stays one unknown word, which sbatch refuses (checked on the real Slurm: test_real_sbatch_*)."""
import shlex
import subprocess

import pytest

from pulsar_lite.managers.cli.plugin import Script
from pulsar_lite.managers.cli.slurm import Slurm
from pulsar_lite.managers.cli.torque import Torque
from pulsar_lite.managers.contract import SchedulerError


def slurm_directives(values, client_spec, params=None, native="-A site --qos=normal"):
    plugin = Slurm(params if params is not None else {"partition": "debug"})
    script = Script("pulsar_7", "/s/o", "/s/e", plugin.params, native, {"native_specification": client_spec},
                    plugin.policy(values))
    return plugin.directives(script)


def client_lines(directives):
    return [line[len("#SBATCH "):] for line in directives.lines[6:]]  # after the daemon's 3 and the admin's 3


@pytest.mark.parametrize("flag", ["-s", "-H", "-k"])
def test_append_with_one_flag_allowed_never_gives_the_client_the_managers_partition_account_or_qos(flag):
    directives = slurm_directives({"client_submit_params": "append",
                                   "client_submit_options": ["-c", "--mem", "-t", flag]},
                                  f"{flag}-pgpu {flag}-Aother {flag}--qos=high")
    words = [word for line in client_lines(directives) for word in shlex.split(line)]
    # before the fix: ['-s', '-pgpu', '-s', '-Aother', '-s', '--qos=high'] -> sbatch reads -p gpu -A other --qos=high
    assert not any(word.startswith(("-p", "-A", "--qos")) for word in words), words


def test_allow_never_gives_the_client_the_daemons_name_streams_array_or_wait():
    try:
        directives = slurm_directives({"client_submit_params": "allow"},
                                      "-s-Jevil -s-o/tmp/x -s--array=1-3 -s--wait -s--export=ALL")
    except SchedulerError:
        return  # refused: fine
    words = [word for line in client_lines(directives) for word in shlex.split(line)]
    assert not any(word.startswith(("-J", "-o", "--array", "--wait", "--export")) for word in words), words


def test_pbs_flag_with_a_glued_queue():
    plugin = Torque({"destination": "batch"})
    script = Script("pulsar_7", "/s/o", "/s/e", plugin.params, None, {"native_specification": "-h-qexpress -h-Nevil"},
                    plugin.policy({"client_submit_params": "append", "client_submit_options": ["-h", "-l walltime"]}))
    try:
        lines = plugin.directives(script).lines
    except SchedulerError:
        return
    words = [word for line in lines[4:] for word in shlex.split(line[len("#PBS "):])]
    assert not any(word.startswith(("-q", "-N")) for word in words), words  # before the fix: -qexpress, -Nevil


@pytest.mark.integration
def test_real_sbatch_never_reads_a_clients_flag_cluster_as_the_daemons_options(tmp_path):
    """What sbatch makes of the directives written (held with -H so it never runs; cancelled after): a refusal, or
    a job with the daemon's name and no array (before the fix: JobName=evil, ArrayTaskId=1-3)."""
    from tests.conftest import need
    from tests.integration.schedulers import slurm_ready
    need(slurm_ready(), "Slurm is not running here (bash scripts/ci/slurm-up.sh)")
    directives = slurm_directives({"client_submit_params": "allow"},
                                  f"-H-Jevil -H-o{tmp_path}/client_out -H--array=1-3 -H--comment=client",
                                  native=None)
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n" + "\n".join(directives.lines) + "\ntrue\n")
    done = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        assert "invalid option" in done.stderr, done.stderr  # refused: the job fails with sbatch's reason
        return
    job = done.stdout.strip()
    try:
        shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    finally:
        subprocess.run(["scancel", job], capture_output=True)
    assert "JobName=pulsar_7" in shown and "ArrayTaskId" not in shown, shown
