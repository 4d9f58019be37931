"""``pulsar-lite config``: a commented app.yml for a chosen setup, a strong token, the directories with safe
permissions, and the Galaxy job_conf destination that matches.

The GA4GH TES face is written off (``tes: false``, ``tes_allowed_images: []``) unless ``--tes`` asks for it: a
Galaxy site that never meant to run arbitrary containers does not get them by default. ``--tes`` writes it on,
with a token of its own (``tes_token``, not the Pulsar one) and the images ``--tes-image`` names (none: no task
runs until some are listed).
"""
from __future__ import annotations

import os
import secrets
import sys
from urllib.parse import urlsplit

import yaml

from ..errors import ConfigError

MANAGERS = {
    "local": ("queued_python", {"num_concurrent_jobs": "*"}, "jobs run on this host, one per CPU"),
    "slurm": ("queued_cli", {"job_plugin": "Slurm", "shell_plugin": "LocalShell"},
              "Slurm through sbatch/squeue here (shell_plugin: SecureShell + shell_hostname for a submit host)"),
    "pbs": ("queued_cli", {"job_plugin": "OpenPBS", "shell_plugin": "LocalShell"},
            "OpenPBS / PBS Pro through qsub/qstat here (job_plugin: Torque for Torque)"),
    "condor": ("queued_condor", {"submit_request_memory": 4096},
               "HTCondor through its Python bindings (pip install htcondor; CONDOR_CONFIG)"),
    "drmaa": ("queued_drmaa", {"native_specification": ""},
              "a DRMAA library (DRMAA_LIBRARY_PATH; Grid Engine also SGE_ROOT and GLIBC_TUNABLES)"),
}


def add_arguments(parser) -> None:
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rest", action="store_true", help="Galaxy reaches this daemon over HTTP")
    mode.add_argument("--mq", metavar="AMQP_URL", help="the daemon dials out to Galaxy's RabbitMQ (no port open)")
    parser.add_argument("--manager", choices=sorted(MANAGERS), default="local", help="where jobs run (default local)")
    parser.add_argument("--staging", required=True, metavar="DIR", help="job directories (shared with compute "
                        "nodes for cluster managers)")
    parser.add_argument("--state", metavar="DIR", help="the job database (default: <output's directory>/persisted)")
    parser.add_argument("--output", "-o", required=True, metavar="APP_YML", help="where to write app.yml")
    parser.add_argument("--host", default="0.0.0.0", help="--rest: listen address (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8913, help="--rest: listen port (default 8913)")
    parser.add_argument("--galaxy-url", default="https://galaxy.example.org",
                        help="--mq: Galaxy's URL, for the job_conf printed")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--tes", action="store_true", help="--rest: serve GA4GH TES too, with a token of its own "
                        "(default: tes: false)")
    parser.add_argument("--tes-image", action="append", default=[], metavar="PATTERN",
                        help="--tes: an image TES executors may use (fnmatch pattern; repeat for more; default none)")


def render_tes(args, tes_token: str | None) -> list[str]:
    if not args.tes:
        return ["# GA4GH TES (docs/tes.md): off. `pulsar-lite config --tes` writes it on, with its own token",
                "tes: false", "tes_allowed_images: []", ""]
    images = yaml.safe_dump(list(args.tes_image), default_flow_style=True).strip()
    return ["# GA4GH TES at /ga4gh/tes/v1 (docs/tes.md). Its own token, an administrator who sees every task",
            "# (clients: Authorization: Bearer); the Pulsar token above does not open it. Users who see only",
            "# their own tasks: set tes_users_file, then `pulsar-lite tes-user add NAME --config THIS_FILE`",
            "tes: true", f"tes_token: {tes_token}",
            f"#tes_users_file: {os.path.join(os.path.dirname(os.path.abspath(args.output)), 'tes_users')}",
            "# the images executors may use (fnmatch patterns); none listed: no task runs until you add some",
            f"tes_allowed_images: {images}", ""]


def render(args, token: str, state: str, tes_token: str | None = None) -> str:
    manager_type, options, what = MANAGERS[args.manager]
    manager = {"type": manager_type, **{k: v for k, v in options.items() if v != ""}}
    lines = [f"# pulsar_lite app.yml written by `pulsar-lite config` ({'REST' if args.rest else 'message queue'}, "
             f"manager {args.manager}). Every key: app.yml.sample; reference: docs/configuration.md.",
             "# Check it with: pulsar-lite doctor --config THIS_FILE", ""]
    if args.rest:
        lines += ["# where the REST face listens (put TLS in front: a reverse proxy, docs/security.md)",
                  f"host: {args.host}", f"port: {args.port}", ""]
    else:
        lines += ["# the broker Galaxy's Pulsar MQ runner uses; this daemon only dials out to it",
                  f"message_queue_url: {yaml.safe_dump(args.mq).strip().splitlines()[0]}",
                  "web: false", "# updates are re-sent until Galaxy acknowledges them (match Galaxy's amqp_acknowledge)",
                  "amqp_acknowledge: true", "# jobs Galaxy never cleans up (it cannot over AMQP): removed after 10 days",
                  "job_retention: 864000", ""]
    lines += ["# the secret clients send (Authorization: Bearer, or private_token=); generated, keep it secret",
              f"private_token: {token}", "",
              "# job directories (for a cluster: on a filesystem the compute nodes share, at the same path)",
              f"staging_directory: {os.path.abspath(args.staging)}", "",
              "# the job database (SQLite); keep it on a local disk", f"persistence_directory: {state}", "",
              *render_tes(args, tes_token),
              f"# {what}", "managers:", "  _default_:"]
    lines += [f"    {line}" for line in yaml.safe_dump(manager, sort_keys=False).strip().splitlines()]
    return "\n".join(lines) + "\n"


def galaxy_destination(args, token: str) -> str:
    if args.rest:
        host = "pulsar.example.org" if args.host in ("0.0.0.0", "::") else args.host
        return f"""runners:
  pulsar_rest:
    load: galaxy.jobs.runners.pulsar:PulsarRESTJobRunner
execution:
  environments:
    pulsar:
      runner: pulsar_rest
      url: http://{host}:{args.port}/
      private_token: {token}
      default_file_action: transfer
      dependency_resolution: remote
      rewrite_parameters: true
"""
    parts = urlsplit(args.mq)
    redacted = args.mq.replace(f":{parts.password}@", ":CHANGE_ME@") if parts.password else args.mq
    return f"""runners:
  pulsar_mq:
    load: galaxy.jobs.runners.pulsar:PulsarMQJobRunner
    amqp_url: {redacted}
    galaxy_url: {args.galaxy_url}
    amqp_acknowledge: true
execution:
  environments:
    pulsar:
      runner: pulsar_mq
      jobs_directory: {os.path.abspath(args.staging)}
      default_file_action: remote_transfer
      dependency_resolution: remote
      rewrite_parameters: true
"""


def run(args) -> int:
    from ..config import load_config

    output = os.path.abspath(args.output)
    if args.mq and not args.mq.startswith(("amqp://", "amqps://", "pyamqp://")):
        raise ConfigError(f"--mq needs an amqp:// URL, not {args.mq!r}")
    if args.tes and not args.rest:
        raise ConfigError("--tes needs --rest: TES clients reach the daemon over HTTP")
    if args.tes_image and not args.tes:
        raise ConfigError("--tes-image is for --tes")
    if os.path.exists(output) and not args.force:
        print(f"pulsar-lite config: {output} exists; use --force to overwrite it", file=sys.stderr)
        return 2
    state = os.path.abspath(args.state or os.path.join(os.path.dirname(output), "persisted"))
    token = secrets.token_urlsafe(32)
    tes_token = secrets.token_urlsafe(32) if args.tes else None
    for directory in (os.path.abspath(args.staging), state, os.path.dirname(output)):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    for directory in (os.path.abspath(args.staging), state):
        os.chmod(directory, 0o700)
    text = render(args, token, state, tes_token)
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(output, 0o600)  # it holds the token
    load_config(output)  # what was written must load
    print(f"wrote {output} (mode 0600; directories {args.staging} and {state}, mode 0700)")
    print(f"start it:  pulsar-lite serve --config {output}")
    print(f"check it:  pulsar-lite doctor --config {output}; pulsar-lite check --config {output}")
    print("\nGalaxy job_conf.yml destination (add to Galaxy's job configuration):\n")
    print(galaxy_destination(args, token))
    if args.tes:
        print(f"GA4GH TES clients: URL http://{args.host if args.host not in ('0.0.0.0', '::') else 'this-host'}:"
              f"{args.port}, token {tes_token} (Authorization: Bearer; docs/tes.md)")
        if not args.tes_image:
            print("  no image is allowed yet: list the executors' images in tes_allowed_images")
    return 0
