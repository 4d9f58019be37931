"""Every log line about a job carries its manager and job id; log_format json writes one object per line."""
import json
import logging

from pulsar_lite.logs import JsonFormatter, TextFormatter, configure_logging, job_context


def record(message, **extra):
    entry = logging.LogRecord("pulsar_lite.x", logging.INFO, __file__, 1, message, (), None)
    entry.__dict__.update(extra)
    return entry


def test_text_lines_name_the_job_and_its_manager_once():
    formatter = TextFormatter()
    assert formatter.format(record("staged in 3 files", manager="big", job_id="42")).endswith(" [big/42]")
    assert formatter.format(record("job 42: adopting process", manager="big", job_id="42")).endswith(
        "job 42: adopting process [manager big]")
    line = formatter.format(record("job 42 [big] -> complete", manager="big", job_id="42"))
    assert line.endswith("job 42 [big] -> complete")
    assert formatter.format(record("no job here")).endswith("no job here")


def test_json_lines(capsys):
    configure_logging("INFO", "json")
    try:
        with job_context("_default_", "j7"):
            logging.getLogger("pulsar_lite.test").warning("staging inputs failed: %s", "404")
        logging.getLogger("pulsar_lite.test").info("not about a job")
    finally:
        configure_logging("INFO", "text")
    first, second = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()[-2:]]
    assert first["message"] == "staging inputs failed: 404" and first["level"] == "WARNING"
    assert first["job_id"] == "j7" and first["manager"] == "_default_" and first["time"].endswith("Z")
    assert "job_id" not in second


def test_engine_work_runs_in_the_jobs_context(engine_factory, caplog):
    engine = engine_factory()
    engine.setup("_default_", "ctx1")
    engine.submit("_default_", "ctx1", {"command_line": "sleep 5"})
    with caplog.at_level(logging.DEBUG):
        engine.submit("_default_", "ctx1", {"command_line": "sleep 5"})  # a duplicate: logged, in the job's context
    engine.cancel("_default_", "ctx1")
    about = [r for r in caplog.records if "duplicate submission" in r.getMessage()]
    assert about and all(getattr(r, "job_id", None) == "ctx1" and r.manager == "_default_" for r in about)
    assert JsonFormatter().format(about[0])
