import subprocess

import pytest

from pulsar_lite.engine.script import env_statement, render
from pulsar_lite.errors import BadRequest


def test_env_statements():
    assert env_statement({"name": "A", "value": 'x"y'}) == 'A="x\\"y"; export A'
    assert env_statement({"name": "A", "value": "$B", "raw": True}) == "A=$B; export A"
    assert env_statement({"file": "/x/env.sh", "name": "A"}) == '. "/x/env.sh"'
    assert env_statement({"execute": "module load x"}) == "module load x"
    with pytest.raises(BadRequest):
        env_statement({"value": "no name"})
    with pytest.raises(BadRequest):
        env_statement({"name": "A; rm -rf /", "value": "x"})


def test_script_runs_and_records_return_code(tmp_path):
    job = tmp_path / "job"
    for sub in ("working", "metadata"):
        (job / sub).mkdir(parents=True)
    text = render(job_directory=str(job), command_line='echo "$GREETING" > out; sh -c "exit 7"',
                  env=[{"name": "GREETING", "value": "hi there"}])
    (job / "command.sh").write_text(text)
    result = subprocess.run(["/bin/bash", str(job / "command.sh")], env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 7
    assert (job / "return_code").read_text().strip() == "7"
    assert (job / "working" / "out").read_text() == "hi there\n"
    assert (job / "pid").read_text().strip().isdigit()
    assert (job / "tmp").is_dir() and (job / "home").is_dir()
    assert (job / "metadata" / "__instrument_core_galaxy_slots").read_text().strip() == "1"


def test_script_metrics_and_galaxy_python_without_external_commands(tmp_path):
    """epoch files, GALAXY_PYTHON and tmp/home come from bash builtins, with what `date +%s` and
    `command -v` would give."""
    import shutil
    import time

    job = tmp_path / "job"
    for sub in ("working", "metadata"):
        (job / sub).mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").mkdir()  # a directory named python is skipped, as `command -v` does
    fake = tmp_path / "bin2" / "python3"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    text = render(job_directory=str(job), command_line='echo "$GALAXY_PYTHON" > gp')
    (job / "command.sh").write_text(text)
    before = int(time.time())
    path = f"{bindir}:{fake.parent}:/usr/bin:/bin"
    result = subprocess.run(["/bin/bash", str(job / "command.sh")], env={"PATH": path})
    assert result.returncode == 0
    expected = shutil.which("python", path=f"{bindir}:{fake.parent}:/usr/bin:/bin") or str(fake)
    assert (job / "working" / "gp").read_text().strip() == expected
    start = int((job / "metadata" / "__instrument_core_epoch_start").read_text())
    end = int((job / "metadata" / "__instrument_core_epoch_end").read_text())
    assert before <= start <= end <= int(time.time())
    for command in ("date", "mkdir", "command -v"):
        assert f"{command} " not in text.replace("|| mkdir -p", "")
