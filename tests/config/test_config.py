import os
import textwrap
from pathlib import Path

import pytest

from pulsar_lite.config import load_config
from pulsar_lite.config.schema import APP_OPTIONS, MANAGER_OPTIONS
from pulsar_lite.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, text, name="app.yml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.host == "127.0.0.1" and config.port == 8913
    assert config.private_token is None
    assert list(config.managers) == ["_default_"]
    manager = config.managers["_default_"]
    assert manager.type == "queued_python" and manager.num_concurrent_jobs == 1
    assert manager.staging_directory == str(tmp_path / "var" / "staging")
    assert config.store_path == str(tmp_path / "var" / "persisted_data" / "pulsar_lite.sqlite")


def test_pulsar_app_yml_keys(tmp_path):
    path = write(tmp_path, """
        staging_directory: files/staging
        persistence_directory: files/persisted
        private_token: s3cret
        assign_ids: uuid
        tool_dependency_dir: deps
        dependency_resolution:
          resolvers:
            - type: galaxy_packages
        min_polling_interval: 0.25
        conda_auto_init: false
        managers:
          _default_:
            type: queued_python
            num_concurrent_jobs: "*"
          big:
            num_concurrent_jobs: 3
            env_FOO: bar
            staging_directory: /tmp/other
    """)
    config = load_config(str(path))
    assert config.private_token == "s3cret"
    assert config.managers["_default_"].num_concurrent_jobs == (os.cpu_count() or 1)
    assert config.managers["_default_"].assign_ids == "uuid"  # inherited from the app level
    assert config.managers["_default_"].staging_directory == str(tmp_path / "files" / "staging")
    assert config.managers["big"].staging_directory == "/tmp/other"
    assert config.managers["big"].env == {"FOO": "bar"}
    assert config.managers["big"].min_polling_interval == 0.25
    assert config.tool_dependency_dir == str(tmp_path / "deps")
    assert config.passthrough == {"conda_auto_init": False}


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "staging_directry: /x\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert "staging_directry" in str(info.value) and str(path) in str(info.value)


def test_mistyped_value_names_key_and_file(tmp_path):
    path = write(tmp_path, "managers:\n  _default_:\n    num_concurrent_jobs: lots\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    message = str(info.value)
    assert "managers._default_.num_concurrent_jobs" in message and str(path) in message


def test_unknown_manager_type_lists_known_types(tmp_path):
    path = write(tmp_path, "managers:\n  x:\n    type: queued_mesos\n")
    with pytest.raises(ConfigError, match="queued_mesos.*known types: .*queued_cli.*queued_python"):
        load_config(str(path))


def test_unsupported_pulsar_key_warns(tmp_path, caplog):
    path = write(tmp_path, "sentry_dsn: https://example.invalid/1\n")
    config = load_config(str(path))
    assert any("sentry_dsn" in w for w in config.warnings)
    assert "sentry_dsn" in caplog.text


def test_server_ini_is_honoured(tmp_path):
    write(tmp_path, "private_token: fromyml\n")
    ini = write(tmp_path, """
        [server:main]
        use = egg:Paste#http
        host = 0.0.0.0
        port = 9999

        [app:main]
        paste.app_factory = pulsar.web.wsgi:app_factory
        app_config = %(here)s/app.yml
    """, name="server.ini")
    config = load_config(str(ini))
    assert (config.host, config.port, config.private_token) == ("0.0.0.0", 9999, "fromyml")
    # a directory holding server.ini only works too
    (tmp_path / "app.yml").rename(tmp_path / "other.yml")
    ini.write_text(ini.read_text().replace("app.yml", "other.yml"))
    assert load_config(str(tmp_path)).port == 9999


def test_environment_overrides(tmp_path, monkeypatch):
    path = write(tmp_path, "private_token: a\n")
    monkeypatch.setenv("PULSAR_CONFIG_OVERRIDE_PRIVATE_TOKEN", "b")
    monkeypatch.setenv("PULSAR_CONFIG_PORT", "1234")
    config = load_config(str(path))
    assert config.private_token == "b" and config.port == 1234


def test_sample_documents_every_key():
    sample = (REPO / "app.yml.sample").read_text()
    for option in APP_OPTIONS + MANAGER_OPTIONS:
        assert f"{option.key}:" in sample, f"app.yml.sample does not document {option.key}"


def test_sample_loads(tmp_path):
    # the sample is all comments: it must load as an empty (default) config
    config = load_config(str(REPO / "app.yml.sample"))
    assert config.managers


def test_queued_cli_takes_pulsars_keys(tmp_path):
    path = write(tmp_path, "managers:\n  hpc:\n    type: queued_cli\n    job_plugin: Slurm\n    shell_plugin: SecureShell\n"
                           "    shell_hostname: login.example.org\n    shell_username: galaxy\n"
                           "    job_partition: normal\n    job_--mem: 4G\n    native_specification: --qos=low\n")
    manager = load_config(str(path)).managers["hpc"]
    assert manager.job_plugin == "Slurm" and manager.shell_plugin == "SecureShell"
    assert manager.shell_hostname == "login.example.org" and manager.native_specification == "--qos=low"
    assert manager.job_params == {"partition": "normal", "--mem": "4G"}
    assert manager.job_name_template == "pulsar_$job_id"  # a manager option, not a scheduler one


def test_queued_cli_needs_a_job_plugin_and_a_known_shell(tmp_path):
    with pytest.raises(ConfigError, match="needs 'managers.hpc.job_plugin'"):
        load_config(str(write(tmp_path, "managers:\n  hpc:\n    type: queued_cli\n")))
    with pytest.raises(ConfigError, match="shell_plugin.*expected one of LocalShell, SecureShell"):
        load_config(str(write(tmp_path, "managers:\n  hpc:\n    type: queued_cli\n    job_plugin: Slurm\n"
                                        "    shell_plugin: ParamikoShell\n")))
    with pytest.raises(ConfigError, match="unknown key 'managers.hpc.shell_colour'"):
        load_config(str(write(tmp_path, "managers:\n  hpc:\n    type: queued_cli\n    job_plugin: Slurm\n"
                                        "    shell_colour: red\n")))
