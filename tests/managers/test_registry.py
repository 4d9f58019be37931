import pytest

from pulsar_lite import managers
from pulsar_lite.errors import ConfigError, ManagerUnavailable
from pulsar_lite.managers import ManagerSpec, manager_class


def test_known_manager_loads():
    assert manager_class("queued_python").__name__ == "QueuedPythonManager"


def test_unknown_type_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown type 'mesos'.*queued_python"):
        manager_class("mesos", manager="big")


def test_missing_package_names_manager_and_package(monkeypatch):
    spec = ManagerSpec(type="queued_fake", target="pulsar_lite.managers.queued_python:QueuedPythonManager",
                       requires=(("no_such_module_xyz", "fake-drm-bindings"),))
    monkeypatch.setitem(managers.REGISTRY, "queued_fake", spec)
    with pytest.raises(ManagerUnavailable) as info:
        manager_class("queued_fake", manager="cluster")
    message = str(info.value)
    assert "cluster" in message and "queued_fake" in message and "pip install fake-drm-bindings" in message


def test_drmaa_without_its_library_says_what_is_missing(monkeypatch):
    pytest.importorskip("ctypes")
    monkeypatch.delenv("DRMAA_LIBRARY_PATH", raising=False)
    import sys
    monkeypatch.delitem(sys.modules, "drmaa", raising=False)
    try:
        import drmaa  # noqa: F401
    except ImportError:
        pytest.skip("the drmaa package is not installed")
    except Exception:
        pass
    else:
        pytest.skip("drmaa loads here without DRMAA_LIBRARY_PATH (its library is on the default path)")
    monkeypatch.delitem(sys.modules, "drmaa", raising=False)
    with pytest.raises(ManagerUnavailable, match="'drmaa' is installed but cannot be loaded.*DRMAA_LIBRARY_PATH"):
        manager_class("queued_drmaa", manager="sge")


def test_every_cluster_manager_is_registered_with_pulsars_name():
    assert {"queued_cli", "queued_condor", "queued_drmaa"} <= set(managers.REGISTRY)
    assert managers.REGISTRY["queued_condor"].requires == (("htcondor2", "htcondor"),)
