"""Grid Engine's command output as queued_drmaa reads it: ``qstat -xml`` (states; jobs by name), ``qacct -j``
(a finished job's outcome; jobs by name) and Grid Engine's times. Its commands run with TZ=UTC here."""
from __future__ import annotations

import calendar
import re
import time
import xml.etree.ElementTree as ElementTree

from .cli.plugin import Found
from .contract import Observed, SchedulerError


def parse_qstat_xml(text: str) -> dict[str, Observed]:
    """``qstat -xml``: every job's state letters (r running, t transferring, qw waiting, h hold, E error, ...)."""
    if not text.strip():
        return {}
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise SchedulerError(f"qstat -xml printed something that is not XML: {exc}") from None
    result = {}
    for job in root.iter("job_list"):
        number = (job.findtext("JB_job_number") or "").strip()
        letters = (job.findtext("state") or "").strip()
        if not number:
            continue
        if "E" in letters:  # kept in the queue, never run unless an operator clears it (qmod -cj): given up
            result[number] = Observed.held(f"in error state ({letters}) in Grid Engine", letters, wait=False)
        elif "r" in letters or "t" in letters or "s" in letters.lower():
            result[number] = Observed(Observed.RUNNING, None, None, letters)
        elif "h" in letters:
            result[number] = Observed.held(f"held in Grid Engine ({letters})", letters)
        else:
            result[number] = Observed(Observed.QUEUED, None, None, letters)
    return result


def parse_qacct(text: str) -> Observed | None:
    """``qacct -j N``: a finished job's ``failed`` and ``exit_status`` (None when qacct has no record)."""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            fields.setdefault(key, value.strip())
    if "exit_status" not in fields:
        return None
    failed = fields.get("failed", "0")
    code_text = fields["exit_status"].split()[0]
    code = int(code_text) if code_text.lstrip("-").isdigit() else None
    if not failed.startswith("0"):
        return Observed(Observed.ENDED, code, f"Grid Engine reports failed {failed}", "failed")
    if code is not None and code > 128:
        return Observed(Observed.ENDED, -(code - 128), f"killed by signal {code - 128}", "signaled")
    return Observed(Observed.ENDED, code, None, "done")


def grid_engine_time(text: str | None) -> float | None:
    """A time Grid Engine printed in UTC (its commands run with TZ=UTC here): ``2026-12-07T05:51:58`` (qstat
    -xml), ``Mon Dec  7 05:51:58 2026`` (qacct), or epoch seconds."""
    text = (text or "").strip()
    if text.isdigit():
        return float(text)
    for form in ("%Y-%m-%dT%H:%M:%S", "%a %b %d %H:%M:%S %Y"):
        try:
            return float(calendar.timegm(time.strptime(text.split(".")[0], form)))
        except ValueError:
            continue
    return None


def jobs_named(text: str, name: str, since: float = 0.0, user: str | None = None) -> list[Found]:
    """``user``'s jobs named ``name`` submitted at or after ``since`` in ``qstat -xml -r`` (run with TZ=UTC): a
    pending job's submission time, a running one's start (never before its submission). SchedulerError when the
    answer cannot be read (a control character in some user's job name makes it invalid XML), or a record of
    that name cannot."""
    if not text.strip():
        return []
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise SchedulerError(f"qstat -xml printed something that is not XML, looking for job {name}: {exc}") from None
    found = []
    for job in root.iter("job_list"):
        if (job.findtext("JB_name") or "").strip() != name:
            continue
        owner = (job.findtext("JB_owner") or "").strip()
        if user and owner and owner != user:
            continue
        number = (job.findtext("JB_job_number") or "").strip()
        if not number.isdigit():
            raise SchedulerError(f"qstat -xml gave job {name} the number {number[:40]!r}, not a job number")
        started = job.findtext("JAT_start_time")
        when = grid_engine_time(job.findtext("JB_submission_time") or started)
        if when is None:
            raise SchedulerError(f"qstat -xml's record of job {number} ({name}) has no time that can be read")
        if when >= since:
            found.append(Found(number, when, started is not None))
    return found


def qacct_named(text: str, name: str, since: float = 0.0, user: str | None = None) -> list[Found]:
    """The same from ``qacct -j <name>`` (run with TZ=UTC): jobs that have ended, one record per task."""
    found = []
    for record in re.split(r"^=+\s*$", text, flags=re.M):
        fields = {}
        for line in record.strip().splitlines():
            key, _, value = line.strip().partition(" ")
            fields.setdefault(key, value.strip())
        if fields.get("jobname") != name or (user and fields.get("owner") not in (None, user)):
            continue
        number, when = fields.get("jobnumber", ""), grid_engine_time(fields.get("qsub_time"))
        if not number.isdigit() or when is None:
            raise SchedulerError(f"qacct's record of a job named {name} cannot be read: {record.strip()[:200]!r}")
        if when >= since:
            found.append(Found(number, when, True))
    return found
