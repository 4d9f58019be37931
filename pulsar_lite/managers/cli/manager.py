"""``queued_cli``: a job plugin (Slurm, Torque, OpenPBS) run through a shell (LocalShell, SecureShell).

Pulsar's configuration shape: ``job_plugin``, ``shell_plugin``, ``shell_*`` options for the shell and
``job_*`` options passed to the scheduler (``job_partition: normal`` -> ``#SBATCH -p normal``,
``job_--mem: 4G`` -> ``#SBATCH --mem 4G``). The job script (``command.sh``, in the job's directory, which
must be on a filesystem the compute nodes share at the same path) carries the scheduler's directives;
the job writes ``return_code``, ``metadata/job_stdout`` and ``metadata/job_stderr`` there.
"""
from __future__ import annotations

import logging

from ..contract import Observed, OutcomeUnknown, SchedulerDown, SchedulerError, Submission
from ..environment import log_withheld
from ..options import DropLog
from ..scheduler import SchedulerManager
from .openpbs import OpenPBS
from .plugin import STATUS_COMMAND_BYTES, JobPlugin, Script, kept_first
from .shells import SHELLS, LocalShell
from .slurm import Slurm
from .torque import Torque

log = logging.getLogger(__name__)

PLUGINS: dict[str, type[JobPlugin]] = {"Slurm": Slurm, "Torque": Torque, "OpenPBS": OpenPBS}
#: rounds in a row a job's record may be unreadable before the job counts as not listed (then its history,
#: its return_code file, or a failure decide, as for any job that left the queue)
UNREADABLE_ROUNDS = 5


class QueuedCliManager(SchedulerManager):
    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        values = config.values
        self.plugin: JobPlugin = PLUGINS[values["job_plugin"]](dict(values.get("job_params") or {}))
        self.plugin.configure(values.get("native_specification"))
        self.scheduler = self.plugin.scheduler
        shell_options = {key[len("shell_"):]: value for key, value in values.items()
                         if key.startswith("shell_") and key != "shell_plugin" and value is not None}
        self.shell: LocalShell = SHELLS[values["shell_plugin"]](
            **shell_options, pass_environment=values.get("pass_environment") or ())
        self.command_bytes = int(values.get("status_command_bytes") or STATUS_COMMAND_BYTES)
        self.client_policy = self.plugin.policy(values)  # what a client's submit params may add
        self._dropped = DropLog(self.name)
        #: external id -> rounds in a row its record could not be read (the status thread's alone)
        self._unreadable: dict[str, int] = {}

    def start(self) -> None:
        super().start()
        log_withheld(self.name, self.shell.environment(), "its jobs and the scheduler's commands")

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
                        submit_params=submission.submit_params, policy=self.client_policy)
        directives = self.plugin.directives(script)
        self._dropped.note(job_id, directives.dropped)
        return "\n".join(directives.lines)

    # -- the scheduler's commands ----------------------------------------------------------------------------
    def submit_job(self, submission: Submission) -> str:
        result = self.shell.run(self.plugin.submit(submission.script))  # OutcomeUnknown: timed out, ssh dropped
        if result.returncode != 0:
            if self.plugin.submit_outcome_unknown(result.returncode, result.stdout, result.stderr):
                raise OutcomeUnknown(result.last_error_line())
            if self.plugin.scheduler_down(result.returncode, result.stdout, result.stderr):
                raise SchedulerDown(result.last_error_line())  # nothing was sent: it waits
            raise SchedulerError(result.last_error_line())  # it ran and said no
        try:
            return self.plugin.parse_submit(result.stdout)
        except SchedulerError as exc:  # it said yes, but not under which id
            raise OutcomeUnknown(str(exc)) from None

    def query(self, external_ids: list[str]) -> dict[str, Observed]:
        """One command per chunk of ids (each under the argument limits), all in this round; a command that
        fails fails the round, a record that cannot be read concerns its job alone."""
        observed: dict[str, Observed] = {}
        for command, ids in self.plugin.status_commands(external_ids, self.command_bytes, self._status_user()):
            result = self.shell.run(command)
            observed.update(self.plugin.parse_status(result.returncode, result.stdout, result.stderr, ids))
        for external_id in set(self._unreadable) - set(external_ids):
            del self._unreadable[external_id]  # no longer followed
        return self._readable(observed)

    def _status_user(self) -> str | None:
        """Who submits (for a status command listing all of that user's jobs); None when it cannot be told now."""
        try:
            return self.shell.user()
        except SchedulerError:
            return None

    def history(self, external_ids: list[str]) -> dict[str, Observed]:
        observed: dict[str, Observed] = {}
        for command, ids in self.plugin.history_commands(external_ids, self.command_bytes):
            result = self.shell.run(command)
            observed.update(self.plugin.parse_history(result.returncode, result.stdout, result.stderr, ids))
        return self._readable(observed)

    def _readable(self, observed: dict[str, Observed]) -> dict[str, Observed]:
        """Unreadable records: logged when first seen; left out (the job is not listed) once a job has had
        nothing else for UNREADABLE_ROUNDS rounds, so that no job waits for ever on a garbled record."""
        for external_id, seen in list(observed.items()):
            if seen.phase != Observed.UNKNOWN:
                self._unreadable.pop(external_id, None)
                continue
            rounds = self._unreadable[external_id] = self._unreadable.get(external_id, 0) + 1
            if rounds == 1:
                log.warning("[%s] %s's record of job %s cannot be read (%s); nothing is concluded from it this "
                            "round", self.name, self.scheduler, external_id, seen.state)
            elif rounds > UNREADABLE_ROUNDS:
                if rounds == UNREADABLE_ROUNDS + 1:
                    log.warning("[%s] %s's record of job %s could not be read %d times in a row: the job now counts "
                                "as not listed", self.name, self.scheduler, external_id, UNREADABLE_ROUNDS)
                del observed[external_id]
        return observed

    def delete_job(self, external_id: str) -> None:
        result = self.shell.run(self.plugin.delete(external_id))
        if not self.plugin.delete_succeeded(result.returncode, result.stdout, result.stderr):
            raise SchedulerError(result.last_error_line())

    def find_submitted(self, name: str, since: float) -> list[str]:
        """The jobs of the user the commands run as (the ssh user on a submit host) named ``name``, in the live
        queue and the scheduler's record of finished jobs, the one to keep first."""
        user = self.shell.user()
        result = self.shell.run(self.plugin.find(name, user))
        if result.returncode != 0:
            raise SchedulerError(result.last_error_line())
        found = self.plugin.parse_found(result.stdout, name, since, user)
        history = self.plugin.find_history(name, since, user)
        if history is not None:
            result = self.shell.run(history)
            found += self.plugin.parse_found_history(result.returncode, result.stdout, result.stderr, name, since,
                                                     user)
        return kept_first(found)
