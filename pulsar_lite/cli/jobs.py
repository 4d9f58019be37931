"""``pulsar-lite jobs list|show|cancel|clean``: the jobs a daemon holds.

``list`` and ``show`` read the store directly, read-only (they work with the daemon stopped, and change
nothing while it runs); ``cancel`` and ``clean`` go through the running daemon's REST face, so that its
managers stop what runs.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from .. import wire

COLUMNS = ("job_id", "manager", "state", "external_id", "created", "updated", "returncode", "stage_in_bytes",
           "stage_out_bytes", "message")


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("list", "show", "cancel", "clean"))
    parser.add_argument("job_id", nargs="?", help="show, cancel, clean: the job")
    parser.add_argument("--config", "-c", required=True, help="the daemon's app.yml")
    parser.add_argument("--manager", "-m", help="only this manager's jobs (show/cancel/clean: the job's manager)")
    parser.add_argument("--state", "-s", help="only jobs in this state (queued, running, failed, ...)")
    parser.add_argument("--older-than", metavar="AGE", help="only jobs unchanged for AGE (30s, 15m, 2h, 7d)")
    parser.add_argument("--limit", type=int, default=1000, help="list: at most this many (default 1000)")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument("--lines", type=int, default=20, help="show: last lines of each stream (default 20)")


def parse_age(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not match:
        raise ValueError(f"an age like 30s, 15m, 2h or 7d, not {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _database(config) -> sqlite3.Connection:
    path = config.store_path
    if not os.path.exists(path):
        raise FileNotFoundError(f"no job database at {path} (has the daemon ever run with this configuration?)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    return db


def _rows(config, args) -> list[dict]:
    clauses, params = [], []
    if args.manager:
        clauses.append("manager = ?")
        params.append(args.manager)
    if args.state:
        clauses.append("state = ?")
        params.append(wire.SETUP if args.state == "setup" else args.state)
    if args.older_than:
        clauses.append("updated < ?")
        params.append(time.time() - parse_age(args.older_than))
    query = f"SELECT {', '.join(COLUMNS)} FROM jobs"
    if clauses:
        query += " WHERE " + " AND ".join(clauses)
    with _database(config) as db:
        rows = db.execute(query + " ORDER BY created LIMIT ?", (*params, args.limit)).fetchall()
    return [dict(row) for row in rows]


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _size(value) -> str:
    if not value:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f}{unit}"
        value /= 1024
    return f"{value:.1f}TiB"


def list_jobs(config, args) -> int:
    rows = _rows(config, args)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    now = time.time()
    print(f"{'JOB':<36} {'MANAGER':<12} {'STATE':<15} {'EXTERNAL':<12} {'AGE':>5} {'IN':>8} {'OUT':>8}")
    for row in rows:
        print(f"{row['job_id'][:36]:<36} {row['manager'][:12]:<12} {wire.wire_state(row['state']):<15} "
              f"{(row['external_id'] or '-')[:12]:<12} {_age(now - row['updated']):>5} "
              f"{_size(row['stage_in_bytes']):>8} {_size(row['stage_out_bytes']):>8}")
    print(f"{len(rows)} job(s)")
    return 0


def _tail(path: str, lines: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 65536))
            return "\n".join(handle.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def show_job(config, args) -> int:
    if not args.job_id:
        print("pulsar-lite jobs show: which job?", file=sys.stderr)
        return 2
    with _database(config) as db:
        clauses = "job_id = ?" + (" AND manager = ?" if args.manager else "")
        params = (args.job_id, args.manager) if args.manager else (args.job_id,)
        row = db.execute(f"SELECT * FROM jobs WHERE {clauses}", params).fetchone()
        if row is None:
            print(f"pulsar-lite jobs: no job {args.job_id}", file=sys.stderr)
            return 1
        job = dict(row)
        job["transitions"] = [dict(t) for t in db.execute(
            "SELECT state, ts, message FROM transitions WHERE manager=? AND job_id=? ORDER BY id",
            (job["manager"], job["job_id"]))]
    staging = config.managers[job["manager"]].staging_directory if job["manager"] in config.managers else None
    streams = {}
    if staging:
        metadata = os.path.join(staging, job["job_id"], "metadata")
        for name in ("tool_stdout", "tool_stderr", "job_stdout", "job_stderr"):
            streams[name] = _tail(os.path.join(metadata, name), args.lines)
    if args.json:
        job["launch_config"] = json.loads(job["launch_config"]) if job.get("launch_config") else None
        print(json.dumps({**job, "streams": streams}, indent=1, default=str))
        return 0
    for key in ("job_id", "manager", "state", "external_id", "pid", "returncode", "cancel_requested", "message",
                "stage_in_bytes", "stage_in_seconds", "stage_out_bytes", "stage_out_seconds"):
        print(f"{key:>18}: {job.get(key)}")
    print(f"{'directory':>18}: {os.path.join(staging, job['job_id']) if staging else '?'}")
    print("       transitions:")
    for step in job["transitions"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(step["ts"]))
        print(f"                   {when}  {wire.wire_state(step['state'])}"
              f"{'  (' + step['message'] + ')' if step['message'] else ''}")
    for name, text in streams.items():
        if text:
            print(f"--- {name} (last {args.lines} lines)\n{text}")
    return 0


def through_daemon(config, args) -> int:
    """cancel / clean through the running daemon's REST face."""
    if not args.job_id:
        print(f"pulsar-lite jobs {args.action}: which job?", file=sys.stderr)
        return 2
    if not config.web:
        print(f"pulsar-lite jobs {args.action}: this daemon has no REST face (web: false)", file=sys.stderr)
        return 1
    host = "127.0.0.1" if config.host in ("0.0.0.0", "", None) else ("::1" if config.host == "::" else config.host)
    address = f"[{host}]" if ":" in host else host
    manager = "" if args.manager in (None, wire.DEFAULT_MANAGER) else f"/managers/{args.manager}"
    job_id = urllib.parse.quote(args.job_id, safe="")
    method, path = ("PUT", f"/jobs/{job_id}/cancel") if args.action == "cancel" else ("DELETE", f"/jobs/{job_id}")
    query = f"?private_token={urllib.parse.quote(config.private_token)}" if config.private_token else ""
    request = urllib.request.Request(f"http://{address}:{config.port}{manager}{path}{query}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=30):
            pass
    except urllib.error.HTTPError as exc:
        print(f"pulsar-lite jobs {args.action}: HTTP {exc.code}: {exc.read().decode(errors='replace').strip()}",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pulsar-lite jobs {args.action}: the daemon does not answer at {address}:{config.port} ({exc}); "
              f"{args.action} needs it running", file=sys.stderr)
        return 1
    print(f"{args.action}: {args.job_id} done")
    return 0


def run(args) -> int:
    from ..config import load_config

    config = load_config(args.config)
    try:
        if args.action == "list":
            return list_jobs(config, args)
        if args.action == "show":
            return show_job(config, args)
        return through_daemon(config, args)
    except (FileNotFoundError, ValueError, sqlite3.Error) as exc:
        print(f"pulsar-lite jobs: {exc}", file=sys.stderr)
        return 1
