"""The real Pulsar clients (pulsar-galaxy-lib 0.15.16 and 0.16.0) against pulsar_lite over REST."""
import pytest

from ..conftest import run_check_api, run_check_cli

pytestmark = pytest.mark.integration

TOKEN = "check-token"


@pytest.fixture
def server(daemon_factory, tmp_path):
    deps = tmp_path / "d" / "dependencies"
    # what the check's requirement test resolves through the galaxy_packages resolver
    (deps / "dep1" / "1.1").mkdir(parents=True)
    (deps / "dep1" / "1.1" / "env.sh").write_text("MOO=moo_override; export MOO\n")
    return daemon_factory({
        "private_token": TOKEN,
        "file_cache_dir": str(tmp_path / "d" / "cache"),
        "managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 2}},
    }).start()


def _assert_ok(result, daemon):
    assert result.returncode == 0, (
        f"pulsar-check failed ({result.returncode})\n--- stdout\n{result.stdout[-4000:]}\n"
        f"--- stderr\n{result.stderr[-6000:]}\n--- server log\n{daemon.log()[-4000:]}")


@pytest.mark.parametrize("options", [
    [],
    ["--transport", "curl"],
    ["--test_errors"],
    ["--cache"],
    ["--explicit_tool_declarations"],
    ["--legacy_galaxy_json"],
], ids=lambda o: " ".join(o) or "default")
def test_pulsar_check_cli(client_python, server, options):
    result = run_check_cli(client_python, server.url, "--private_token", TOKEN, *options)
    _assert_ok(result, server)


@pytest.mark.parametrize("options", [[], ["--transport", "curl"]], ids=lambda o: " ".join(o) or "default")
def test_pulsar_check_cli_granian(client_python, daemon_factory, options):
    """The same client checks with web_server: granian instead of paste."""
    daemon = daemon_factory({"private_token": TOKEN, "web_server": "granian",
                             "managers": {"_default_": {"num_concurrent_jobs": 2}}}).start()
    result = run_check_cli(client_python, daemon.url, "--private_token", TOKEN, *options)
    _assert_ok(result, daemon)
    assert "granian" in daemon.log()


def test_pulsar_check_named_manager(client_python, daemon_factory):
    daemon = daemon_factory({"managers": {"_default_": {}, "other": {"num_concurrent_jobs": 2}}}).start()
    result = run_check_cli(client_python, daemon.url + "managers/other")
    _assert_ok(result, daemon)
    assert "[other] -> complete" in daemon.log()


def test_pulsar_check_wrong_token_fails(client_python, server):
    result = run_check_cli(client_python, server.url, "--private_token", "wrong", timeout=60)
    assert result.returncode != 0
    assert "401" in result.stderr + result.stdout


@pytest.mark.parametrize("options", [
    {"default_file_action": "transfer", "test_env": True, "test_rewrite_action": True, "test_unicode": True,
     "test_requirement": True},
    {"default_file_action": "copy"},
    {"default_file_action": "none"},
    {"default_file_action": "remote_copy"},
    {"default_file_action": "remote_copy", "test_env": True, "test_rewrite_action": True, "test_unicode": True,
     "test_requirement": True},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_pulsar_check_run_api(client_python, server, options):
    result = run_check_api(client_python, url=server.url, private_token=TOKEN, **options)
    _assert_ok(result, server)


def test_pulsar_check_run_api_local_setup(client_python, server):
    """jobs_directory: the client lays out paths itself; setup happens inside submit, config arrives as a message."""
    result = run_check_api(client_python, url=server.url, private_token=TOKEN, default_file_action="remote_copy",
                           jobs_directory=str(server.staging), test_env=True, test_requirement=True,
                           test_unicode=True, test_rewrite_action=True)
    _assert_ok(result, server)
