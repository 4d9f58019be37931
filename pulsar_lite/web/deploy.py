"""Paste Deploy entry point, so ``paster serve server.ini`` style deployments work.

server.ini::

    [server:main]
    use = egg:Paste#http
    host = 127.0.0.1
    port = 8913

    [app:main]
    use = egg:pulsar_lite
    app_config = %(here)s/app.yml
"""
from __future__ import annotations

import os

from .. import affinity
from ..config import load_config
from .. import startup


def app_factory(global_conf, **local_conf):
    app_config = local_conf.get("app_config")
    here = global_conf.get("here", os.getcwd())
    path = app_config or (os.path.join(here, "app.yml") if os.path.exists(os.path.join(here, "app.yml")) else None)
    config = load_config(path)
    startup.configure(config)
    affinity.pin(config.daemon_cpus)  # paste deploy loads the app before its server starts any thread
    return startup.build_app(config)
