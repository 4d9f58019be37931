"""``pulsar-lite`` command line."""
from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .errors import ConfigError


def _load(args):
    from .config import load_config

    overrides = {"host": getattr(args, "host", None), "port": getattr(args, "port", None),
                 "web_server": getattr(args, "server", None)}
    return load_config(args.config, overrides=overrides)


def cmd_serve(args) -> int:
    from .server import serve, serve_without_web
    from .startup import configure

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pulsar-lite", description="Galaxy Pulsar-compatible job server")
    parser.add_argument("--version", action="version", version=f"pulsar_lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon")
    check = sub.add_parser("check-config", help="validate a configuration and print what it means")
    for p in (serve, check):
        p.add_argument("--config", "-c", help="app.yml, server.ini, or a directory holding one")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8913)")
    serve.add_argument("--server", choices=("paste", "granian"), help="HTTP server (default: web_server, paste)")
    serve.add_argument("--no-web", action="store_true", help="no HTTP face: serve the message queue only")
    serve.set_defaults(func=cmd_serve)
    check.set_defaults(func=cmd_check_config)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"pulsar-lite: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
