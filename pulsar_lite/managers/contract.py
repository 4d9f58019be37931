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


@dataclass(frozen=True)
class Observed:
    """What the scheduler says of one job."""
    #: QUEUED (pending, held, suspended), RUNNING, ENDED, or UNKNOWN: the scheduler listed the job but its
    #: record could not be read (garbled, cut short); nothing is concluded from it this round
    phase: str
    #: the job script's exit code as the scheduler saw it (ENDED)
    exit_code: int | None = None
    #: the scheduler's reason when it ended the job itself (time limit, memory, node failure, deleted, ...);
    #: None when the script ran to its end
    failure: str | None = None
    #: the scheduler's own name for the state (for logs)
    state: str = ""

    QUEUED = "queued"
    RUNNING = "running"
    ENDED = "ended"
    UNKNOWN = "unknown"

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
