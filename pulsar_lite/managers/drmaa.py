"""``queued_drmaa``: a DRMAA 1.0 scheduler (Grid Engine and others) through the PyPI ``drmaa`` package.

The library is found through ``DRMAA_LIBRARY_PATH``; with Grid Engine, ``SGE_ROOT`` (and ``SGE_CELL``)
must be set too. Some libdrmaa builds need static TLS the Python interpreter does not reserve
(``cannot allocate memory in static TLS block``): start the daemon with
``GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096`` in its environment (the systemd unit shows how).

Status: the session's ``jobStatus`` for each job it submitted, in one pass per interval (an in-process
library call per job, no command), and ``wait`` with a zero timeout for a finished job's exit code,
signal or abort. A new session cannot ask about the jobs an earlier one submitted (Grid Engine answers
``InvalidJobException`` for each: why Pulsar answers HTTP 500 for every such job after a restart), so
jobs re-attached after a restart are read with ``qstat -xml`` (one call for all of them) and, once they
have left it, ``qacct -j`` and their ``return_code`` file.
"""
from __future__ import annotations

import logging
import os
import re
import shlex

from .bounded import LibraryCalls
from .cli.plugin import kept_first
from .cli.shells import LocalShell
from .contract import Observed, OutcomeUnknown, SchedulerDown, SchedulerError, Submission
from .drmaa_options import client_policy, merged_specification
from .grid_engine import jobs_named, parse_qacct, parse_qstat_xml, qacct_named
from .environment import job_environment, log_withheld
from .options import DropLog
from .scheduler import SchedulerManager

log = logging.getLogger(__name__)


_EXPORT_ALL = re.compile(r"(?<!\S)-V(?!\S)")


def without_daemon_environment(spec: str | None, passed=()) -> tuple[str | None, dict[str, str] | None]:
    """A native specification that copies nothing of the daemon's environment into the job, and the
    environment to give the job explicitly (None: none). The library runs in the daemon, so Grid Engine's
    ``-V`` would copy the daemon's whole environment, secrets included: it is replaced by what
    environment.py lets a job have. ``-v NAME`` (no value) copies one variable: refused for a name the job may
    not have."""
    if not spec:
        return spec, None
    try:
        words = shlex.split(spec)
    except ValueError as exc:
        raise SchedulerError(f"native specification cannot be parsed ({exc}): {spec[:80]!r}") from None
    allowed = job_environment(passed)
    for option, value in zip(words, words[1:]):
        if option != "-v":
            continue
        for item in value.split(","):
            if "=" not in item and item not in allowed:
                raise SchedulerError(f"'-v {item}' would copy the daemon's {item} into the job: give its value "
                                     f"(-v {item}=...), or name it in the manager's pass_environment")
    if "-V" not in words:
        return spec, None
    return _EXPORT_ALL.sub(" ", spec).strip() or None, allowed


class _Undetermined(Exception):
    """DRMAA's jobStatus said "undetermined"."""


def _bindings():
    import drmaa  # imported at first use: the registry has checked that it imports

    return drmaa


def observed_from_status(status: str) -> Observed | None:
    """A DRMAA jobStatus as a phase; None for done/failed (then ``wait`` tells how it ended) and for
    undetermined (then qstat and qacct are asked)."""
    if status in ("running", "system_suspended", "user_suspended", "user_system_suspended"):
        return Observed(Observed.RUNNING, None, None, status)
    if status == "queued_active":
        return Observed(Observed.QUEUED, None, None, status)
    if status in ("system_on_hold", "user_on_hold", "user_system_on_hold"):
        return Observed.held(f"held in the scheduler ({status})", status)
    return None


def observed_from_info(info) -> Observed:
    """A DRMAA JobInfo (from ``wait``) as an end."""
    if info.wasAborted:
        return Observed(Observed.ENDED, None, "aborted by the scheduler before it ran (qdel, or it could not "
                                              "start)", "aborted")
    if info.hasSignal:
        signal = str(info.terminatedSignal)
        return Observed(Observed.ENDED, None, f"killed by signal {signal}", "signaled")
    if info.hasExited:
        return Observed(Observed.ENDED, int(info.exitStatus), None, "exited")
    return Observed(Observed.ENDED, None, "ended without an exit status", "unknown")


def _scheduler_wide(drmaa) -> tuple[type, ...]:
    """DRMAA errors about the scheduler as a whole (the pass fails and is retried), not about one job."""
    errors = drmaa.errors
    return (errors.DrmCommunicationException, errors.NoActiveSessionException, errors.TryLaterException,
            errors.DrmsExitException)


class QueuedDrmaaManager(SchedulerManager):
    scheduler = "DRMAA"
    #: past this many jobs of this session, their states come from one qstat a round, not a library call each
    BATCH = 8
    #: qacct runs (one job each) a round; the jobs left are asked about in the next round
    QACCT_PER_ROUND = 10

    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        timeout = float(config.values.get("scheduler_call_timeout") or 60.0)
        # one library call at a time, each waited for at most scheduler_call_timeout (bounded.py): a wedged
        # qmaster never holds the status loop, submissions, deletes or shutdown
        self._calls = LibraryCalls(f"{self.name}-drmaa", timeout)
        # Grid Engine's commands (qstat, qacct, qdel), with the same timeouts and scrubbed environment as
        # queued_cli's (the cell's SGE_* variables kept)
        self._shell = LocalShell(timeout=timeout, pass_environment=(
            "SGE_*", *(config.values.get("pass_environment") or ())))
        self._session = None
        self._ours: set[str] = set()  # ids this session submitted (the only ones it can ask about)
        #: job ids whose runJob is still in the library (perhaps past its time limit: it may yet send the job)
        self._sending: set[str] = set()
        self.client_policy = client_policy(config.values)
        self._dropped = DropLog(self.name)

    def start(self) -> None:
        """Opens the DRMAA session. A scheduler that cannot be reached now (its qmaster down) does not stop the
        daemon: this manager comes up degraded (its jobs wait; /readyz and doctor say why) and the session is
        opened at the first submission or poll that can."""
        try:
            self._calls("DRMAA session", self._open_session)
        except SchedulerError as exc:
            self.down_error = self.down_error or str(exc)
            log.error("[%s] %s; its jobs wait until it can", self.name, exc)
        log_withheld(self.name, job_environment(self.config.values.get("pass_environment") or ()),
                     "its jobs, even with -V,")

    def _open_session(self) -> None:
        """In a library call. SchedulerDown when the session cannot be opened."""
        if self._session is not None:
            return
        drmaa = _bindings()
        session = drmaa.Session()
        try:
            session.initialize()
        except Exception as exc:
            self.down_error = (f"manager '{self.name}' (queued_drmaa) cannot open a DRMAA session "
                               f"(DRMAA_LIBRARY_PATH={os.environ.get('DRMAA_LIBRARY_PATH')}): "
                               f"{str(exc).strip() or type(exc).__name__}")
            raise SchedulerDown(self.down_error) from None
        self._session = session
        self.down_error = None
        self.scheduler = str(session.drmsInfo).split(" ")[0] or "DRMAA"

    def unreachable(self) -> str | None:
        if self._session is None and self.down_error:
            return self.down_error
        return super().unreachable()

    def stop(self) -> None:
        super().stop()
        if self._session is not None:
            try:
                self._calls("DRMAA exit", self._session.exit)
            except Exception:
                pass

    def submit_job(self, submission: Submission) -> str:
        spec, dropped = merged_specification(self.config.values.get("native_specification"),
                                             submission.submit_params.get("native_specification"), self.client_policy)
        self._dropped.note(submission.job_id, dropped)
        spec, environment = without_daemon_environment(spec, self.config.values.get("pass_environment") or ())
        self._sending.add(submission.job_id)
        try:
            external_id = self._calls("DRMAA runJob", self._run_job_call, submission, spec, environment)
        except OutcomeUnknown:
            raise  # perhaps still in the library: _run_job_call's end says when it is not
        except BaseException:
            self._sending.discard(submission.job_id)
            raise
        self._ours.add(external_id)
        return external_id

    def still_submitting(self, job_id: str) -> bool:
        return job_id in self._sending

    def _run_job_call(self, submission: Submission, spec: str | None, environment) -> str:
        try:
            return self._run_job(submission, spec, environment)
        finally:
            self._sending.discard(submission.job_id)

    def _run_job(self, submission: Submission, spec: str | None, environment) -> str:
        drmaa = _bindings()
        self._open_session()  # SchedulerDown: nothing sent, the job waits
        template = self._session.createJobTemplate()
        try:
            template.remoteCommand = submission.script
            template.jobName = submission.name
            template.outputPath = ":" + submission.stdout
            template.errorPath = ":" + submission.stderr
            template.workingDirectory = os.path.join(submission.job_directory, "working")
            if spec:
                template.nativeSpecification = spec
            if environment is not None:
                template.jobEnvironment = environment
            return str(self._session.runJob(template))
        except drmaa.errors.DrmCommunicationException as exc:  # the qmaster's answer may be what was lost
            raise OutcomeUnknown(f"DRMAA lost touch with the scheduler: {str(exc).strip() or repr(exc)}") from None
        except drmaa.errors.DrmaaException as exc:
            raise SchedulerError(str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)) from None
        finally:
            self._session.deleteJobTemplate(template)

    def query(self, external_ids: list[str]) -> dict[str, Observed]:
        """This session's jobs through the library (past BATCH of them: one qstat for all, and the library only
        for those that have left it, to read their end); the others (an earlier session's) through qstat."""
        ours = [i for i in external_ids if i in self._ours]
        others = [i for i in external_ids if i not in self._ours]
        listed: dict[str, Observed] | None = None
        if len(ours) > self.BATCH:
            listed = self._qstat()
            ours = [i for i in ours if i not in listed]  # left the queue: the library says how they ended
        result, lost = self._calls("DRMAA jobStatus", self._statuses, ours) if ours else ({}, [])
        others += lost
        if others:
            listed = listed if listed is not None else self._qstat()
            result.update({k: v for k, v in listed.items() if k in others})
        if listed is not None:
            result.update({k: v for k, v in listed.items() if k in external_ids and k not in result})
        return result

    def _statuses(self, external_ids: list[str]) -> tuple[dict[str, Observed], list[str]]:
        """In a library call: what the session says of these jobs, and the ids it cannot tell about."""
        drmaa = _bindings()
        self._open_session()
        result, lost = {}, []
        for external_id in external_ids:
            try:
                result[external_id] = self._status(drmaa, external_id)
            except drmaa.errors.InvalidJobException:
                self._ours.discard(external_id)  # reaped or unknown: ask qstat/qacct from now on
                lost.append(external_id)
            except _Undetermined:
                log.info("[%s] DRMAA cannot determine the state of job %s; asking qstat and qacct instead",
                         self.name, external_id)
                self._ours.discard(external_id)
                lost.append(external_id)
            except drmaa.errors.ExitTimeoutException:
                result[external_id] = Observed(Observed.RUNNING, None, None, "ending")
            except _scheduler_wide(drmaa) as exc:
                raise SchedulerError(f"DRMAA cannot reach the scheduler: {exc}") from None
            except Exception as exc:  # about this one job: it must not stop the pass for the others
                log.warning("[%s] DRMAA cannot tell about job %s (%s); asking qstat and qacct instead",
                            self.name, external_id, str(exc).strip() or type(exc).__name__)
                self._ours.discard(external_id)
                lost.append(external_id)
        return result, lost

    def _status(self, drmaa, external_id: str) -> Observed:
        """One job of this session: its jobStatus, and once it has ended, how (``wait``, which reaps it)."""
        status = str(self._session.jobStatus(external_id))
        if status == "undetermined":  # the library cannot tell: not an answer to wait for
            raise _Undetermined(status)
        seen = observed_from_status(status)
        if seen is not None:
            return seen
        try:
            seen = observed_from_info(self._session.wait(external_id, drmaa.Session.TIMEOUT_NO_WAIT))
        except drmaa.errors.DrmaaException:
            raise
        except Exception as exc:
            # DRMAA_ERRNO_NO_RUSAGE (24; the binding raises a bare Exception): the job is reaped but Grid
            # Engine kept no usage record, as for a job removed before it ran. Its return_code file decides.
            if not str(exc).startswith("code 24"):
                raise
            seen = Observed(Observed.ENDED, None, None, "no usage record: removed before it ran?")
        self._ours.discard(external_id)  # reaped: this session can no longer ask about it
        return seen

    def _qstat(self) -> dict[str, Observed]:
        """Every job of the daemon's user in one qstat (not the whole cell's)."""
        done = self._run(["qstat", "-xml", "-u", self._shell.user()])
        if done.returncode != 0:
            raise SchedulerError(f"qstat failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-300:]}")
        return parse_qstat_xml(done.stdout)

    def history(self, external_ids: list[str]) -> dict[str, Observed]:
        """qacct takes one job: at most QACCT_PER_ROUND a round; the others have no news this round."""
        result = {}
        for external_id in external_ids[:self.QACCT_PER_ROUND]:
            done = self._run(["qacct", "-j", external_id])
            seen = parse_qacct(done.stdout) if done.returncode == 0 else None
            if seen is not None:
                result[external_id] = seen
        for external_id in external_ids[self.QACCT_PER_ROUND:]:
            result[external_id] = Observed.unreadable("qacct not asked this round (asked in a later one)")
        return result

    def _run(self, command: list[str]):
        """A Grid Engine command through the shell layer (timeout, its process tree stopped at it)."""
        return self._shell.run(command)

    def delete_job(self, external_id: str) -> None:
        if external_id in self._ours and self._calls("DRMAA control", self._terminate, external_id):
            return
        done = self._run(["qdel", external_id])
        if done.returncode != 0 and "does not exist" not in done.stdout + done.stderr:
            raise SchedulerError(f"qdel failed: {(done.stderr or done.stdout).strip()[-300:]}")

    def _terminate(self, external_id: str) -> bool:
        """In a library call: TERMINATE through the session; False when it is not the session's to stop."""
        drmaa = _bindings()
        if self._session is None:
            return False
        try:
            self._session.control(external_id, drmaa.JobControlAction.TERMINATE)
        except drmaa.errors.InvalidJobException:
            pass  # already gone
        except drmaa.errors.DrmaaException as exc:
            raise SchedulerError(f"DRMAA TERMINATE failed: {exc}") from None
        return True

    def find_submitted(self, name: str, since: float) -> list[str]:
        """This user's jobs named ``name``: pending or running (qstat), or ended (qacct: what qstat forgot)."""
        user = self._shell.user()  # who the library submits as: the daemon's user
        done = self._run(["env", "TZ=UTC", "qstat", "-xml", "-u", user, "-r"])
        if done.returncode != 0:
            raise SchedulerError(f"qstat failed: {(done.stderr or done.stdout).strip()[-300:]}")
        found = jobs_named(done.stdout, name, since, user)
        done = self._run(["env", "TZ=UTC", "qacct", "-o", user, "-j", name])
        if done.returncode == 0:
            found += qacct_named(done.stdout, name, since, user)
        elif "not found" not in done.stdout + done.stderr:  # "error: job name <name> not found": none ended
            raise SchedulerError(f"qacct failed: {(done.stderr or done.stdout).strip()[-300:]}")
        return kept_first(found)
