"""What a scheduler plugin and the scheduler-manager base (``scheduler.py``) exchange: the job to submit,
what the scheduler says of a job, and the errors a plugin raises."""
from __future__ import annotations

from dataclasses import dataclass, field


class SchedulerError(Exception):
    """A scheduler command failed; the message says what and why, in one line."""


class OutcomeUnknown(SchedulerError):
    """A scheduler command may have done its work, but its answer was lost: it timed out (and was killed), its
    ssh connection dropped, the reply never came. Raised instead of SchedulerError when it is not sure that
    nothing happened; for a submission this means the scheduler may hold the job, which is then looked up by
    its name before anything is sent again (``submitting.py``). A plain SchedulerError from ``submit_job`` is
    a refusal: the command ran and said no, or nothing was sent."""


class SchedulerDown(SchedulerError):
    """The scheduler could not be reached, and nothing was sent: its controller does not answer ("Unable to
    contact slurm controller"), ssh could not connect, the DRMAA session or the schedd cannot be opened. A
    submission is not refused by it: it waits and is tried again, until ``scheduler_failure_timeout``."""


@dataclass(frozen=True)
class Observed:
    """What the scheduler says of one job."""
    #: QUEUED (pending), RUNNING (suspended too), ENDED, HELD: the scheduler keeps the job but will not run it
    #: until someone releases it (Slurm JobHeldAdmin, PBS H, Grid Engine h or E, HTCondor held), or UNKNOWN:
    #: the scheduler listed the job but its record could not be read (garbled, cut short); nothing is concluded
    #: from it this round
    phase: str
    #: the job script's exit code as the scheduler saw it (ENDED)
    exit_code: int | None = None
    #: the scheduler's reason when it ended the job itself (time limit, memory, node failure, deleted, ...);
    #: None when the script ran to its end. HELD: why it is held
    failure: str | None = None
    #: the scheduler's own name for the state (for logs)
    state: str = ""
    #: HELD: whether an operator may still release it (``held_job_grace`` is waited); False for a state nothing
    #: will bring back by itself (an error state, a state this daemon does not know): given up at once
    wait: bool = True
    #: HELD: seconds it has been held, when the scheduler says (HTCondor's EnteredCurrentStatus)
    held_for: float | None = None

    QUEUED = "queued"
    RUNNING = "running"
    ENDED = "ended"
    HELD = "held"
    UNKNOWN = "unknown"

    @classmethod
    def held(cls, why: str, state: str, wait: bool = True, held_for: float | None = None) -> "Observed":
        """A job the scheduler keeps without running it, and why."""
        return cls(cls.HELD, None, why, state, wait, held_for)

    @classmethod
    def unreadable(cls, record: str) -> "Observed":
        """A record of this job that could not be read (``record``: what it said, for the log)."""
        return cls(cls.UNKNOWN, None, None, f"unreadable record {record.strip()[:160]!r}")


@dataclass
class Submission:
    """What a subclass needs to submit one job."""
    job_id: str
    name: str
    job_directory: str
    script: str  # the job script (command.sh), headers included
    stdout: str
    stderr: str
    launch: dict = field(default_factory=dict)

    @property
    def submit_params(self) -> dict:
        params = self.launch.get("submit_params") or {}
        return params if isinstance(params, dict) else {}
