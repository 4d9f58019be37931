from pulsar_lite.staging.mapper import ActionMapper


def test_default_action_and_workdir_upgrade():
    mapper = ActionMapper({"default_action": "none", "paths": []})
    assert mapper.action("/gx/a.dat", "input")["action_type"] == "none"
    assert mapper.action("/gx/w/x", "output_workdir")["action_type"] == "copy"
    assert mapper.action("/gx/u", "unstructured")["action_type"] == "none"


def test_rules_prefix_glob_regex_and_types():
    mapper = ActionMapper({"default_action": "transfer", "paths": [
        {"path": "/data/shared", "action": "none", "path_types": "input", "match_type": "prefix"},
        {"path": "*.fa", "action": "remote_copy", "path_types": "*any*", "match_type": "glob"},
        {"path": r"^/scratch/.*", "action": "copy", "match_type": "regex"},
    ]})
    assert mapper.action("/data/shared/x", "input")["action_type"] == "none"
    assert mapper.action("/data/shared/x", "output")["action_type"] == "transfer"
    assert mapper.action("/idx/human.fa", "unstructured")["action_type"] == "remote_copy"
    assert mapper.action("/scratch/y", "input")["action_type"] == "copy"


def test_remote_transfer_url():
    mapper = ActionMapper({"default_action": "remote_transfer",
                           "files_endpoint": "https://gx/api/jobs/abc/files?job_key=k"})
    action = mapper.action("/gx/out 1.dat", "output")
    assert action["url"] == "https://gx/api/jobs/abc/files?job_key=k&path=%2Fgx%2Fout+1.dat&file_type=output"


def test_acts_on_server_only_when_some_path_can_map_to_a_remote_action():
    assert not ActionMapper({"default_action": "transfer"}).acts_on_server()
    assert not ActionMapper({"default_action": "none", "paths": [{"path": "/x", "action": "copy"}]}).acts_on_server()
    assert ActionMapper({"default_action": "remote_transfer"}).acts_on_server()
    assert ActionMapper({"default_action": "transfer",
                         "paths": [{"path": "/idx", "action": "remote_copy"}]}).acts_on_server()
