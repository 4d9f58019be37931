"""``queued_cli``: a job plugin (Slurm, Torque, OpenPBS) run through a shell (LocalShell, SecureShell).

Pulsar's configuration shape: ``job_plugin``, ``shell_plugin``, ``shell_*`` options for the shell and
``job_*`` options passed to the scheduler (``job_partition: normal`` -> ``#SBATCH -p normal``,
``job_--mem: 4G`` -> ``#SBATCH --mem 4G``). The job script (``command.sh``, in the job's directory, which
must be on a filesystem the compute nodes share at the same path) carries the scheduler's directives;
the job writes ``return_code``, ``metadata/job_stdout`` and ``metadata/job_stderr`` there.
"""
from __future__ import annotations

import logging

from ..contract import Observed, SchedulerError, Submission
from ..scheduler import SchedulerManager
from .openpbs import OpenPBS
from .plugin import JobPlugin, Script
from .shells import SHELLS, LocalShell
from .slurm import Slurm
from .torque import Torque

log = logging.getLogger(__name__)

PLUGINS: dict[str, type[JobPlugin]] = {"Slurm": Slurm, "Torque": Torque, "OpenPBS": OpenPBS}


class QueuedCliManager(SchedulerManager):
    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        values = config.values
        self.plugin: JobPlugin = PLUGINS[values["job_plugin"]](dict(values.get("job_params") or {}))
        self.scheduler = self.plugin.scheduler
        shell_options = {key[len("shell_"):]: value for key, value in values.items()
                         if key.startswith("shell_") and key != "shell_plugin" and value is not None}
        self.shell: LocalShell = SHELLS[values["shell_plugin"]](**shell_options)

    def stop(self) -> None:
        super().stop()
        close = getattr(self.shell, "close", None)
        if close is not None:
            close()

    # -- the job script's directives --------------------------------------------------------------------
    def script_headers(self, job_id: str, job_directory: str, launch: dict) -> str:
        submission = self.submission(job_id, launch)
        script = Script(name=submission.name, stdout=submission.stdout, stderr=submission.stderr,
                        params=self.plugin.params, native_specification=self.config.values.get("native_specification"),
                        submit_params=submission.submit_params)
        return "\n".join(self.plugin.headers(script))

    # -- the scheduler's commands ----------------------------------------------------------------------------
    def submit_job(self, submission: Submission) -> str:
        result = self.shell.run(self.plugin.submit(submission.script))
        if result.returncode != 0:
            raise SchedulerError(result.last_error_line())
        return self.plugin.parse_submit(result.stdout)

    def query(self, external_ids: list[str]) -> dict[str, Observed]:
        result = self.shell.run(self.plugin.status(external_ids))
        return self.plugin.parse_status(result.returncode, result.stdout, result.stderr, external_ids)

    def history(self, external_ids: list[str]) -> dict[str, Observed]:
        command = self.plugin.history(external_ids)
        if command is None:
            return {}
        result = self.shell.run(command)
        return self.plugin.parse_history(result.returncode, result.stdout, result.stderr)

    def delete_job(self, external_id: str) -> None:
        result = self.shell.run(self.plugin.delete(external_id))
        if not self.plugin.delete_succeeded(result.returncode, result.stdout, result.stderr):
            raise SchedulerError(result.last_error_line())

    def find_submitted(self, name: str, since: float) -> list[str]:
        result = self.shell.run(self.plugin.find(name))
        if result.returncode != 0:
            raise SchedulerError(result.last_error_line())
        return self.plugin.parse_find(result.stdout, name, since)
