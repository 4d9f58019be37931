"""The ``queued_cli`` family: a scheduler's command-line tools, run here or over ssh.

* ``manager.py`` — the manager (on the shared scheduler base, ``managers/scheduler.py``)
* ``shells.py`` — where commands run: ``LocalShell``, ``SecureShell``
* ``plugin.py`` — what a job plugin is (pure command builders and output parsers)
* ``slurm.py``, ``torque.py``, ``openpbs.py`` — one scheduler each: how its jobs are submitted, read, deleted
"""
