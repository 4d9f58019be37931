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
