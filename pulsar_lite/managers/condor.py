"""``queued_condor``: HTCondor through its Python bindings (PyPI ``htcondor``, module ``htcondor2``).

Every job is submitted with ``+PulsarLiteManager = "<manager>"`` and ``JobBatchName = <job name>``, so one
``Schedd.query`` per interval (constrained on that attribute) answers for all of the manager's jobs. A job
leaves the queue as soon as it completes or is removed: its end is read from its user log
(``<job>/job_condor.log``, a local file, the cheaper source) and, when that says nothing conclusive, from
the schedd's history (one query for all such jobs). Held jobs are noticed: by default failed at once with
HTCondor's ``HoldReason`` and removed (the base deletes them until the schedd lets them go);
``held_job_grace`` keeps them held that long first, so an operator can release them (Pulsar's condor
manager never notices a hold: the job stays "running").

Jobs run as the pool's job owner: the account the daemon submits as (HTCondor refuses jobs owned by
root). That account must read and execute the job script and write the job directory; in production the
daemon and its jobs run as one service account.
"""
from __future__ import annotations

import logging
import os
import re
import time

from .cli.plugin import Found, kept_first
from .contract import Observed, OutcomeUnknown, SchedulerDown, SchedulerError, Submission
from .environment import condor_environment, job_environment, log_withheld
from .options import ANY, ClientPolicy, Dialect, DropLog, Resources, choose, safe_value
from .schedd_process import CallFailed, ScheddProcess
from .scheduler import SchedulerManager

log = logging.getLogger(__name__)

TAG = "PulsarLiteManager"
PROJECTION = ["ClusterId", "JobStatus", "HoldReason", "HoldReasonCode", "EnteredCurrentStatus", "ExitCode",
              "ExitBySignal", "ExitSignal", "RemoveReason", "JobBatchName", "QDate"]
#: JobStatus -> phase (1 Idle, 2 Running, 3 Removed, 4 Completed, 5 Held, 6 Transferring output, 7 Suspended)
PHASES = {1: Observed.QUEUED, 2: Observed.RUNNING, 6: Observed.RUNNING, 7: Observed.RUNNING}
#: Pulsar's defaults for the submit description (util/condor), but getenv: a manager's submit_* and the
#: client's submit_params go on top; should_transfer_files NO: the job directory is shared. Pulsar's
#: ``getenv = true`` copied the daemon's whole environment, its secrets with it, into every job: the job gets
#: ``environment`` instead (environment.py: PATH, HOME, LANG, ... and the manager's pass_environment)
DEFAULTS = {"universe": "vanilla", "getenv": "false", "notification": "NEVER", "should_transfer_files": "NO"}
#: submit commands and the job ad attribute each sets (the rest: the command without its underscores,
#: ``request_cpus`` -> ``RequestCpus``): ``+Iwd`` beside ``initialdir``, or ``+AccountingGroup`` beside
#: ``accounting_group``, is one setting written twice
ATTRIBUTES = {"executable": "cmd", "initialdir": "iwd", "initial_dir": "iwd", "output": "out", "error": "err",
              "input": "in", "log": "userlog", "arguments": "args", "environment": "env", "universe": "jobuniverse",
              "priority": "jobprio", "notification": "jobnotification", "accounting_group": "acctgroup",
              "accounting_group_user": "acctgroupuser", "leave_in_queue": "leavejobinqueue",
              "x509userproxy": "x509userproxy", "use_x509userproxy": "x509userproxy", "batch_name": "jobbatchname",
              "max_retries": "jobmaxretries", "dagman_log": "dagmannodeslog", "want_io_proxy": "wantioproxy"}
#: what the daemon decides, which a client never changes: the job's files (what runs, where, its streams and
#: logs; every transfer and the Chirp I/O proxy, which the schedd's shadow serves as the daemon's account:
#: ``transfer_input_files = /etc/pulsar_lite/app.yml`` would hand the job the daemon's configuration), how the
#: daemon finds it (JobBatchName or batch_name, its tag) and whose it is, the universe (``local`` and
#: ``scheduler`` run on the daemon's own host), how often it runs and whether it leaves the queue (retries,
#: ``on_exit_remove = false``, cron, deferral: the daemon follows one run to its end), getenv
DAEMON_KEYS = frozenset({
    "cmd", "iwd", "out", "err", "in", "userlog", "dagmannodeslog", "transfer", "x509userproxy", "scitokensfile",
    "outputdestination", "wantioproxy", "wantremoteio", "include",  # files, and the shadow's I/O as the daemon
    "jobbatchname", TAG.lower(), "owner", "user",  # how the daemon finds it, whose it is
    "jobuniverse", "onexitremove", "jobmaxretries", "retryuntil", "cron", "deferraltime", "deferralwindow",
    "deferralprep", "leavejobinqueue",  # where and how often it runs, and whether it leaves the queue
    "getenv"})
#: what a client may not set, said on a line of its own: they would copy the daemon's environment into the job
CLIENT_REFUSED = ("getenv",)


class SubmitKeys(Dialect):
    """Submit keys as options, named by the job ad attribute they set: the submit language ignores case, ``+X``
    is ``MY.X``, and a submit command sets an attribute a client could also set as ``+Attr``."""

    def name(self, option: str) -> str:
        text = str(option).strip().lower()
        if text.startswith("+") or text.startswith("my."):
            text = text[1:] if text.startswith("+") else text[3:]
        else:
            text = ATTRIBUTES.get(text, text)
        text = text.replace("_", "")
        if text.startswith("transfer") or text in ("shouldtransferfiles", "whentotransferoutput"):
            return "transfer"
        return "cron" if text.startswith("cron") else text


def submit_key(key: str) -> str:
    """A submit key as written: lower case, ``+X`` as ``my.x``."""
    text = str(key).strip().lower()
    return "my." + text[1:] if text.startswith("+") else text


#: the accounting group is written three ways (AccountingGroup is made of the other two)
DIALECT = SubmitKeys("HTCondor", daemon=DAEMON_KEYS,
                     exclusive=(frozenset({"acctgroup", "acctgroupuser", "accountinggroup"}),))
_KEY = re.compile(r"^[A-Za-z_+][A-Za-z0-9_.+]*$")
#: a macro of the submit language: ``$(name)``, ``$$(attr)``, ``$ENV(name)``, ``$RANDOM_CHOICE(...)``,
#: ``$Fpn(name)``, ... The submit expands them in the daemon's process: ``$ENV(PULSAR_CONFIG_PRIVATE_TOKEN)``
#: in a client's value would put the daemon's secret in the job ad. Refused in client values; the manager's
#: own submit_* (the administrator's) may use them
_MACRO = re.compile(r"\$[\w$]*\(")


def client_value(key: str, value) -> str:
    """A client's submit_<key> value, refused (SchedulerError) when it holds a macro of the submit language."""
    text = safe_value(str(value), f"submit_{key}")
    if _MACRO.search(text) or "$ENV" in text.upper():
        raise SchedulerError(f"submit_{key} refused: HTCondor macros ($(...), $ENV(...), $RANDOM_CHOICE(...), ...) "
                             f"are not allowed in a client's submit_params: {text[:60]!r}")
    return text


def _bindings():
    import htcondor2  # the registry checked that it imports; imported here so the module loads without it

    return htcondor2


def observed_from_ad(ad, now: float) -> Observed:
    """What a queue or history ad says (``now``: time.time(), for how long a held job has been held)."""
    status = int(ad.get("JobStatus", 0))
    if status in PHASES:
        return Observed(PHASES[status], None, None, str(status))
    if status == 5:
        held_for = max(0.0, now - float(ad.get("EnteredCurrentStatus", now)))
        return Observed.held(f"held by HTCondor: {ad.get('HoldReason') or 'no reason given'}", "held",
                             held_for=held_for)
    if status == 3:
        reason = ad.get("RemoveReason") or "condor_rm"
        return Observed(Observed.ENDED, None, f"removed from HTCondor ({reason})", "removed")
    if status == 4:
        if ad.get("ExitBySignal"):
            signal = int(ad.get("ExitSignal", 0))
            return Observed(Observed.ENDED, -signal, f"killed by signal {signal}", "completed")
        code = ad.get("ExitCode")
        return Observed(Observed.ENDED, int(code) if code is not None else None, None, "completed")
    return Observed.held(f"in a JobStatus unknown to pulsar_lite ({status})", str(status), wait=False)


def observed_from_log(path: str) -> Observed | None:
    """The end a job's user log records, or None when it records none (yet)."""
    if not os.path.exists(path):
        return None
    htcondor2 = _bindings()
    kind = htcondor2.JobEventType
    ended = None
    with htcondor2.JobEventLog(path) as events:
        for event in events.events(stop_after=0):
            if event.type == kind.JOB_TERMINATED:
                if event.get("TerminatedBySignal") is not None and not event.get("TerminatedNormally", True):
                    signal = int(event["TerminatedBySignal"])
                    ended = Observed(Observed.ENDED, -signal, f"killed by signal {signal}", "completed")
                else:
                    ended = Observed(Observed.ENDED, int(event.get("ReturnValue", 0)), None, "completed")
            elif event.type == kind.JOB_ABORTED:
                reason = event.get("Reason") or "condor_rm"
                ended = Observed(Observed.ENDED, None, f"removed from HTCondor ({reason})", "removed")
    return ended


class QueuedCondorManager(SchedulerManager):
    scheduler = "HTCondor"
    #: HTCondor holds a job when it cannot run it (a transfer failed, a policy expression): failed at once
    DEFAULT_HELD_JOB_GRACE = 0.0

    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        self.submit_params = {str(k).lower(): v for k, v in (config.values.get("submit_params") or {}).items()}
        # Pulsar: a client's submit_params are submit keys too, the manager's submit_* win over them
        self.client_policy = ClientPolicy.of(config.values, DIALECT, "append", (ANY,))
        self._dropped = DropLog(self.name)
        # the bindings hold the interpreter while they wait for the schedd: they run in a child process, one
        # call at a time, each waited for at most scheduler_call_timeout (schedd_process.py)
        self._schedd = ScheddProcess(f"{self.name}-schedd", config.values.get("scheduler_call_timeout") or 60.0,
                                     config.values.get("condor_schedd_name"), config.values.get("condor_collector"))

    def start(self) -> None:
        super().start()
        log_withheld(self.name, job_environment(self.config.values.get("pass_environment") or ()))

    def stop(self) -> None:
        super().stop()
        self._schedd.close()  # a call in flight ends with its process: never waited for

    # -- the schedd ------------------------------------------------------------------------------------
    def _call(self, what: str, method: str, once: bool = False, **arguments):
        """``method`` of the schedd (in the child process of schedd_process.py, waited for at most
        ``scheduler_call_timeout``), tried again once on a schedd located afresh after a failed call, unless
        ``once``: then a failure of the call itself is OutcomeUnknown (a submit whose reply was lost may have
        made a cluster; it is looked for, never sent blindly again). Locating the schedd sends nothing."""
        for attempt in (1, 2):
            try:
                return self._schedd.call(what, method, **arguments)
            except CallFailed as exc:
                if once:
                    raise OutcomeUnknown(str(exc)) from None
                if attempt == 2:
                    raise SchedulerError(str(exc)) from None
            except SchedulerDown:
                if attempt == 2:
                    raise

    # -- submission ------------------------------------------------------------------------------------------
    def description(self, submission: Submission) -> dict:
        """The submit description: Pulsar's defaults, the manager's submit_*, and what the client may add of its
        submit_params (client_submit_params); the daemon's own keys last."""
        htcondor_keys = dict(DEFAULTS)
        htcondor_keys["environment"] = condor_environment(job_environment(self.config.values.get("pass_environment")
                                                                          or ()))
        for key, value in self.submit_params.items():  # the administrator's: macros allowed
            if not _KEY.match(str(key)):
                raise SchedulerError(f"invalid HTCondor submit key {key!r}")
            htcondor_keys[key] = safe_value(str(value), f"submit_{key}")
        client = dict(submission.submit_params)
        for key in [k for k in client if DIALECT.name(k) in CLIENT_REFUSED]:
            log.warning("job %s [%s]: the client's submit_%s is ignored (it would give the job the daemon's "
                        "environment)", submission.job_id, self.name, key)
            del client[key]
        dropped = []
        if client.get("native_specification") not in (None, ""):
            dropped.append("submit_native_specification (HTCondor takes submit keys: submit_<key>)")
        wanted = Resources.from_params(client)
        for key in Resources.keys() | {"native_specification"}:
            client.pop(key, None)
        for key in client:
            if not _KEY.match(str(key)):
                raise SchedulerError(f"invalid HTCondor submit key {key!r}")
        resources = []
        if wanted.cores:
            resources.append(("request_cpus", str(wanted.cores)))
        if wanted.memory_mb:
            resources.append(("request_memory", str(wanted.memory_mb)))
        if wanted.walltime:  # removed (and failed with that reason) once it has run longer than asked
            resources.append(("periodic_remove",
                              f"JobStatus == 2 && time() - EnteredCurrentStatus > {wanted.walltime}"))
        chosen = choose(DIALECT, self.client_policy, [(key,) for key in self.submit_params],
                        [(str(key), value) for key, value in client.items()], resources)
        self._dropped.note(submission.job_id, dropped + chosen.dropped)
        for key, value in chosen.kept:
            htcondor_keys[submit_key(key)] = client_value(key, value)
        job_dir = submission.job_directory
        htcondor_keys.update({
            "executable": submission.script, "output": submission.stdout, "error": submission.stderr,
            "log": os.path.join(job_dir, "job_condor.log"), "initialdir": os.path.join(job_dir, "working"),
            "JobBatchName": submission.name, f"MY.{TAG}": f'"{self.name}"',
        })
        return htcondor_keys

    def submit_job(self, submission: Submission) -> str:
        description = self.description(submission)
        try:
            os.unlink(description["log"])  # a log left by an earlier run of this job id
        except FileNotFoundError:
            pass
        try:
            _bindings().Submit(description)  # read here: a description it refuses is refused before anything is sent
        except Exception as exc:  # nothing was sent
            raise SchedulerError(f"invalid submit description: {str(exc).strip() or type(exc).__name__}") from None
        cluster = self._call("condor submit", "submit", once=True,
                             description={str(k): str(v) for k, v in description.items()})
        return str(cluster)

    # -- status ------------------------------------------------------------------------------------------------
    def query(self, external_ids: list[str]) -> dict[str, Observed]:
        ads = self._call("condor query", "query", constraint=f'{TAG} == "{self.name}"', projection=PROJECTION)
        wanted = set(external_ids)
        now = time.time()
        result = {}
        for ad in ads:
            external_id = str(ad.get("ClusterId"))
            if external_id not in wanted:
                continue
            result[external_id] = observed_from_ad(ad, now)
        return result

    def history(self, external_ids: list[str]) -> dict[str, Observed]:
        result = {}
        unknown = []
        with self._lock:  # one map for all of them (a lookup per job was a scan of every job followed)
            jobs_of = {t.external_id: t.job_id for t in self._tracked.values()}
        for external_id in external_ids:
            job_id = jobs_of.get(external_id)
            seen = None
            if job_id is not None:
                try:
                    seen = observed_from_log(os.path.join(self.hooks.job_directory(self.name, job_id).path,
                                                          "job_condor.log"))
                except Exception as exc:  # an unreadable log: ask the schedd instead
                    log.debug("job %s: user log unreadable: %s", job_id, exc)
            if seen is not None:
                result[external_id] = seen
            else:
                unknown.append(external_id)
        if unknown:
            clusters = " || ".join(f"ClusterId == {int(i)}" for i in unknown if i.isdigit())
            ads = self._call("condor history", "history", constraint=f'{TAG} == "{self.name}" && ({clusters})',
                             projection=PROJECTION, match=len(unknown))
            now = time.time()
            for ad in ads:
                result[str(ad.get("ClusterId"))] = observed_from_ad(ad, now)
        return result

    # -- removal -------------------------------------------------------------------------------------------------
    def delete_job(self, external_id: str) -> None:
        self._remove(external_id, "pulsar_lite: cancelled")

    def _remove(self, external_id: str, reason: str) -> None:
        self._call("condor remove", "remove", constraint=f"ClusterId == {int(external_id)}", reason=reason)

    def find_submitted(self, name: str, since: float, script: str | None = None) -> list[str]:
        """The manager's jobs named ``name`` queued at or after ``since`` (QDate: the schedd's epoch seconds), in
        the queue or its history; with ``script``, only those running that job script (the job's own directory:
        never another daemon's job of the same name). The one that started first, else the oldest."""
        constraint = f'{TAG} == "{self.name}" && JobBatchName == "{name}" && QDate >= {int(since)}'
        if script is not None:
            constraint += f' && Cmd == "{script}"'
        projection = ["ClusterId", "QDate", "JobStatus", "JobStartDate"]
        ads = self._call("condor query", "query", constraint=constraint, projection=projection)
        ads += self._call("condor history", "history", constraint=constraint, projection=projection, match=10)
        found = []
        for ad in ads:
            ran = ad.get("JobStartDate") is not None or int(ad.get("JobStatus", 0)) in (2, 4, 6)
            found.append(Found(str(ad["ClusterId"]), float(ad.get("QDate", 0)), ran))
        return kept_first(found)

    def find_submission(self, job_id: str, name: str, since: float) -> list[str]:
        script = os.path.join(self.hooks.job_directory(self.name, job_id).path, "command.sh")
        if '"' in script or "\\" in script:
            script = None  # not written into a constraint; the name and the manager's tag still narrow it
        return self.find_submitted(name, since, script)
