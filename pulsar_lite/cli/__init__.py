"""``pulsar-lite`` command line: serve, config, check, jobs, doctor, check-config, tes-user.

Exit codes: 0 ok, 1 failed (a check failed, something needs fixing, a request was refused), 2 usage or
configuration error.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..errors import ConfigError


def _load(args):
    from ..config import load_config

    overrides = {"host": getattr(args, "host", None), "port": getattr(args, "port", None),
                 "web_server": getattr(args, "server", None)}
    return load_config(args.config, overrides=overrides)


def cmd_serve(args) -> int:
    from ..server import serve, serve_without_web
    from ..startup import configure

    config = _load(args)
    configure(config)
    if config.source is None:
        logging.getLogger("pulsar_lite").info(
            "no --config given: using the built-in configuration (queued_python, state under %s)",
            config.persistence_directory)
    if args.no_web or not config.web:
        serve_without_web(config)
    else:
        serve(config)
    return 0


def cmd_check_config(args) -> int:
    config = _load(args)
    print(f"{config.source or 'built-in configuration'}: OK")
    for name, manager in config.managers.items():
        print(f"  manager {name}: {manager.type}, {manager.num_concurrent_jobs} concurrent job(s), "
              f"staging {manager.staging_directory}")
    for warning in config.warnings:
        print(f"  warning: {warning}")
    return 0


def cmd_config(args) -> int:
    from .configure import run

    return run(args)


def cmd_check(args) -> int:
    from .check import run

    if not args.url and not args.config:
        print("pulsar-lite check: give --config APP_YML or --url URL", file=sys.stderr)
        return 2
    return run(args)


def cmd_jobs(args) -> int:
    from .jobs import run

    return run(args)


def cmd_doctor(args) -> int:
    from .doctor import run

    return run(args)


def cmd_tes_user(args) -> int:
    from .tes_users import run

    return run(args)


def main(argv=None) -> int:
    from . import configure as configure_cli
    from . import jobs as jobs_cli
    from . import tes_users as tes_users_cli

    parser = argparse.ArgumentParser(prog="pulsar-lite", description="Galaxy Pulsar-compatible job server. "
                                     "Exit codes: 0 ok, 1 failed, 2 usage or configuration error.")
    parser.add_argument("--version", action="version", version=f"pulsar_lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon")
    check_config = sub.add_parser("check-config", help="validate a configuration and print what it means")
    for p in (serve, check_config):
        p.add_argument("--config", "-c", help="app.yml, server.ini, or a directory holding one")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8913)")
    serve.add_argument("--server", choices=("paste", "granian"), help="HTTP server (default: web_server, paste)")
    serve.add_argument("--no-web", action="store_true", help="no HTTP face: serve the message queue only")
    serve.set_defaults(func=cmd_serve)
    check_config.set_defaults(func=cmd_check_config)

    config = sub.add_parser("config", help="write a commented app.yml for a setup, with a strong token, and print "
                            "the matching Galaxy job_conf destination")
    configure_cli.add_arguments(config)
    config.set_defaults(func=cmd_config)

    check = sub.add_parser("check", help="run one real job against a running daemon, PASS/FAIL per step")
    check.add_argument("--config", "-c", help="the daemon's app.yml (its URL or broker, and token)")
    check.add_argument("--url", help="the daemon's URL (instead of --config)")
    check.add_argument("--token", help="the daemon's private_token (default: from --config)")
    check.add_argument("--manager", "-m", help="a named manager (default _default_)")
    check.set_defaults(func=cmd_check)

    jobs = sub.add_parser("jobs", help="list and show the jobs a daemon holds; cancel or clean one")
    jobs_cli.add_arguments(jobs)
    jobs.set_defaults(func=cmd_jobs)

    doctor = sub.add_parser("doctor", help="check a configuration, its directories, broker, schedulers, token, "
                            "clock and port; say what to fix")
    doctor.add_argument("--config", "-c", required=True, help="the daemon's app.yml")
    doctor.set_defaults(func=cmd_doctor)

    tes_user = sub.add_parser("tes-user", help="add, remove or list the TES users (HTTP Basic) of tes_users_file")
    tes_users_cli.add_arguments(tes_user)
    tes_user.set_defaults(func=cmd_tes_user)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"pulsar-lite: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
