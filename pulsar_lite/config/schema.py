"""The configuration schema: every key, its type, its default, its meaning.

This is the only place defaults live. ``app.yml.sample`` is checked against
this table by the test suite, so a key cannot be added without documenting it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from ..affinity import parse_cpus
from ..netpolicy import check_networks

#: ``web_threads: 0`` means this many, with either HTTP server
DEFAULT_WEB_THREADS = 16


@dataclass(frozen=True)
class Option:
    key: str
    kind: str  # str, path, int, float, bool, dict, list, octal, concurrency, choice, urls, heartbeat, timeout, ...
    default: Any
    help: str
    choices: tuple = ()
    required: bool = False


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0", ""):
            return False
    raise ValueError("expected true or false")


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError("expected an integer")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise ValueError("expected a number")


def _str(value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError("expected a string")


def _dict(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    raise ValueError("expected a mapping")


def _list(value: Any) -> list:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    raise ValueError("expected a list")


def _octal(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value, 8)
    raise ValueError("expected an octal mode such as 0750")


def _urls(value: Any) -> list:
    """One broker URL or a list of them (a single string is never split); http(s):// is a pulsar-relay."""
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, list) or not all(isinstance(u, str) and u.strip() for u in urls):
        raise ValueError("expected a URL or a list of URLs")
    urls = [u.strip() for u in urls]
    if len(set(urls)) != len(urls):
        raise ValueError("the same URL is listed twice")
    return urls


def _heartbeat(value: Any) -> int:
    """Seconds between AMQP heartbeats; 0/false/none/off/no/'' disable them, true means 580."""
    if value is True:
        return 580
    if value is False:
        return 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("false", "none", "off", "no", ""):
            return 0
        if lowered in ("true", "on", "yes"):
            return 580
    number = _int(value)
    if number < 0:
        raise ValueError("expected a number of seconds, 0 to disable")
    return number


def _timeout(value: Any) -> float | None:
    """Seconds, or None ('None'/'none') for no limit."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    number = _float(value)
    if number <= 0:
        raise ValueError("expected a positive number of seconds or None")
    return number


def _delivery_mode(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in ("transient", "persistent"):
        return 1 if value.strip().lower() == "transient" else 2
    number = _int(value)
    if number not in (1, 2):
        raise ValueError("expected 1 (transient) or 2 (persistent)")
    return number


def _cert_reqs(value: Any) -> str:
    name = _str(value).strip().lower()
    if name not in ("cert_none", "cert_optional", "cert_required"):
        raise ValueError("expected cert_none, cert_optional or cert_required")
    return name


def _concurrency(value: Any) -> int:
    if value == "*":
        return os.cpu_count() or 1
    number = _int(value)
    if number < 1:
        raise ValueError("expected a positive integer or '*'")
    return number


_COERCE: dict[str, Callable[[Any], Any]] = {
    "cpus": parse_cpus,
    "str": _str,
    "path": _str,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "dict": _dict,
    "list": _list,
    "octal": _octal,
    "concurrency": _concurrency,
    "choice": _str,
    "urls": _urls,
    "heartbeat": _heartbeat,
    "timeout": _timeout,
    "delivery_mode": _delivery_mode,
    "cert_reqs": _cert_reqs,
    "networks": check_networks,
}


def coerce(option: Option, value: Any) -> Any:
    if value is None:
        return None
    result = _COERCE[option.kind](value)
    if option.kind == "choice" and result not in option.choices:
        raise ValueError(f"expected one of {', '.join(option.choices)}")
    return result


# ---------------------------------------------------------------------------
# Options that apply to each manager; a value at the top level of app.yml is
# the default for every manager.

_RETRY_HELP = {
    "max_retries": "retries of a failed {phase} transfer: -1 = none, 0 = forever, N = N times",
    "interval_start": "seconds before the first retry of a {phase} transfer",
    "interval_step": "seconds added to the wait after each retry",
    "interval_max": "longest wait between two retries, in seconds",
}
# Pulsar's default is -1 (no retry), which fails a job on the first dropped connection;
# pulsar_lite retries transient errors 5 times (about a minute) unless told otherwise.
_RETRY_DEFAULTS = {"max_retries": 5, "interval_start": 2.0, "interval_step": 2.0, "interval_max": 30.0}


def _retry_options() -> list[Option]:
    options = []
    for phase, word in (("preprocess", "input"), ("postprocess", "output")):
        for suffix, default in _RETRY_DEFAULTS.items():
            kind = "int" if suffix == "max_retries" else "float"
            options.append(
                Option(f"{phase}_action_{suffix}", kind, default, _RETRY_HELP[suffix].format(phase=word))
            )
    return options


MANAGER_OPTIONS: tuple[Option, ...] = (
    Option("type", "str", "queued_python", "manager type (see docs/managers.md): queued_python, queued_cli, "
           "queued_condor, queued_drmaa"),
    Option("num_concurrent_jobs", "concurrency", 1, "jobs run at once by this manager; '*' = CPU count"),
    Option("staging_directory", "path", "var/staging", "where job directories live (<staging>/<job_id>/)"),
    Option("assign_ids", "choice", "galaxy", "galaxy = use the client's job id; uuid = assign a new one",
           ("galaxy", "uuid")),
    Option("job_directory_mode", "octal", None, "permissions of new job directories, e.g. 0750"),
    Option("maximum_stream_size", "int", 1048576, "bytes of each job stream kept in status replies (then capped to 64 KiB)"),
    Option("debug", "bool", False, "keep job directories when a client asks to clean them"),
    Option("min_polling_interval", "float", None, "seconds between two status queries to a scheduler (one query for "
           "all of a manager's jobs; default 2) or two checks of adopted processes (queued_python; default 0.5)"),
    Option("tmp_dir", "str", None, "job temp directory; unset = a fresh <job>/tmp for each run"),
    Option("job_name_template", "str", "pulsar_$job_id", "scheduler job name, by which a submission whose outcome "
           "is unknown is looked up; also $manager and $generation (the job's run), e.g. "
           "pulsar_${manager}_${job_id}_$generation where managers or daemons share a scheduler account"),
    Option("galaxy_home", "path", None, "Galaxy root on this host, reported as system_properties.galaxy_home"),
    Option("galaxy_virtual_env", "path", None, "virtualenv activated by job scripts (system_properties.galaxy_virtual_env)"),
    Option("galaxy_config_file", "path", None, "reported as system_properties.galaxy_config_file"),
    Option("galaxy_dataset_files_path", "path", None, "reported as system_properties.galaxy_dataset_files_path"),
    Option("galaxy_datatypes_config_file", "path", None, "reported as system_properties.galaxy_datatypes_config_file"),
    Option("kill_grace_period", "float", 5.0, "seconds between SIGTERM and SIGKILL when a job is cancelled"),
    *_retry_options(),
)
MANAGER_OPTION_MAP = {o.key: o for o in MANAGER_OPTIONS}
#: Manager keys with a per-variable prefix: ``env_FOO: bar`` exports FOO=bar.
MANAGER_PREFIXES = ("env_",)

#: The AMQP face (pulsar_lite.amqp); Pulsar's keys with Pulsar's meaning.
AMQP_OPTIONS: tuple[Option, ...] = (
    Option("message_queue_url", "urls", None,
           "AMQP broker URL (amqp://user:pass@host:5672/vhost), pulsar-relay URL (https://relay.example.org), or a "
           "list of them; updates return to the broker or relay a job came from"),
    Option("message_queue_consume", "bool", True, "consume setup, status and kill messages"),
    Option("message_queue_publish", "bool", True, "publish status_update messages when jobs change state"),
    Option("amqp_key_prefix", "str", None,
           "queue name prefix (<prefix>_setup); the manager name is then not part of the names, so one manager only"),
    Option("amqp_durable", "bool", True, "durable exchange and queues, persistent messages"),
    Option("amqp_heartbeat", "heartbeat", 580, "seconds between AMQP heartbeats; 0 or false disables them"),
    Option("amqp_consumer_timeout", "timeout", 0.2,
           "seconds a consumer waits for a message before checking heartbeats and shutdown (None = 1)"),
    Option("amqp_publish_timeout", "timeout", 30.0,
           "seconds to wait for the broker to take and confirm a publish before reconnecting (None = forever)"),
    Option("amqp_publish_retry", "bool", False, "let kombu retry a failed publish in place (the outbox retries anyway)"),
    Option("amqp_publish_retry_max_retries", "int", 5, "kombu publish retries (with amqp_publish_retry)"),
    Option("amqp_publish_retry_interval_start", "float", 1.0, "seconds before the first kombu publish retry"),
    Option("amqp_publish_retry_interval_step", "float", 2.0, "seconds added to the wait after each publish retry"),
    Option("amqp_publish_retry_interval_max", "float", 30.0, "longest wait between two publish retries"),
    Option("amqp_publish_priority", "int", None, "AMQP priority of published messages"),
    Option("amqp_publish_delivery_mode", "delivery_mode", None,
           "1 = transient, 2 = persistent; unset = persistent when amqp_durable"),
    Option("amqp_acknowledge", "bool", False,
           "application-level acks: status updates carry acknowledge_uuid and are republished until acked"),
    Option("amqp_ack_republish_time", "float", 30.0, "seconds before an unacknowledged status update is republished"),
    Option("amqp_max_message_size", "int", 16 * 1024 * 1024, "larger incoming messages are rejected (bytes)"),
    Option("amqp_connect_ssl_ca_certs", "path", None, "CA bundle to verify the broker's TLS certificate"),
    Option("amqp_connect_ssl_keyfile", "path", None, "client TLS key"),
    Option("amqp_connect_ssl_certfile", "path", None, "client TLS certificate"),
    Option("amqp_connect_ssl_cert_reqs", "cert_reqs", None, "cert_none, cert_optional or cert_required"),
    Option("message_queue_username", "str", None, "pulsar-relay (http(s):// message_queue_url): user to log in as; "
           "Galaxy's relay_username (the relay keeps each user's topics apart, so both sides use one user)"),
    Option("message_queue_password", "str", None, "pulsar-relay: that user's password"),
    Option("message_queue_credentials_file", "path", None, "pulsar-relay: JSON file holding a refresh token "
           "(as `pulsar-config --login` writes it; pulsar_lite has no login command yet); used instead of username/password when it exists, "
           "and rewritten with each rotated token"),
    Option("relay_topic_prefix", "str", "", "pulsar-relay: topic prefix, <prefix>_job_setup[_<manager>] (Galaxy's "
           "relay_topic_prefix)"),
    Option("relay_long_poll_timeout", "int", 30, "pulsar-relay: seconds one long poll waits for a message (1-60); "
           "an idle daemon sends one request per this many seconds"),
    Option("message_queue_publish_capabilities", "bool", True, "pulsar-relay: publish each manager's capability "
           "snapshot to pulsar_capabilities[_<manager>] at start-up"),
    Option("status_outbox_drain_interval", "float", 5.0,
           "seconds between safety re-drains of the status outbox (state changes publish at once)"),
)

#: The GA4GH TES face (pulsar_lite.tes).
TES_OPTIONS: tuple[Option, ...] = (
    Option("tes", "bool", True, "serve the GA4GH Task Execution Service API (v1.1) at /ga4gh/tes/v1 (who may use "
           "it: tes_token, tes_users_file; with neither set, private_token, and a warning)"),
    Option("tes_token", "str", None, "TES bearer token (Authorization: Bearer): an administrator who sees every "
           "task. With it or tes_users_file set, private_token no longer opens the TES routes"),
    Option("tes_users_file", "path", None, "TES users (HTTP Basic), one NAME:pbkdf2_sha256$... line each (pulsar-lite "
           "tes-user add); each sees, lists and cancels only their own tasks. Read again when it changes"),
    Option("tes_cors_origins", "list", [], "origins a browser may call the TES routes from (https://app.example.org, "
           "or *): CORS headers and OPTIONS preflights; none: no CORS headers"),
    Option("tes_manager", "str", None, "the manager that runs TES tasks (default: _default_, else the first one); "
           "a task's backend_parameters 'manager' picks another"),
    Option("tes_container_runtime", "choice", "podman", "how executors run: podman, docker, apptainer or "
           "singularity", ("podman", "docker", "apptainer", "singularity")),
    Option("tes_container_command", "str", None, "the runtime's program (default: its name, found on PATH)"),
    Option("tes_container_network", "str", "none", "--network of executors (none: no network; apptainer: "
           "--net --network none, host: the host's)"),
    Option("tes_container_pull", "choice", "missing", "podman/docker --pull policy", ("missing", "never", "always")),
    Option("tes_container_options", "list", [], "extra options given to every executor's run command"),
    Option("tes_container_user", "str", "auto", "executors' user (podman/docker): auto (nobody when the job runs "
           "as root, its writable mounts handed to it; else the job's own user, --userns=keep-id under rootless "
           "podman), UID:GID, keep-id, or image (the image's own, often root)"),
    Option("tes_container_capabilities", "list", [], "capabilities executors keep (podman/docker --cap-drop=all, "
           "then --cap-add each; [runtime-default]: the runtime's default set, and no --no-privs for apptainer)"),
    Option("tes_container_no_new_privileges", "bool", True, "podman/docker --security-opt=no-new-privileges"),
    Option("tes_container_pids_limit", "int", 4096, "podman/docker --pids-limit of each executor (0: the "
           "runtime's default)"),
    Option("tes_allowed_images", "list", ["*"], "images executors may use (fnmatch patterns; '*' or 'any': every one; "
           "apptainer: every registry image, while instance://, a .sif or another image of the host needs a "
           "pattern naming it)"),
    Option("tes_file_roots", "list", [], "local directories file:// inputs and outputs may name (none: file:// is "
           "refused)"),
    Option("tes_fetch_allowed_networks", "networks", [], "addresses the daemon's own TES transfers (inputs, outputs, "
           "every redirect) may connect to although refused by default: CIDRs or loopback, link-local, unspecified, "
           "multicast, metadata, private (e.g. [127.0.0.0/8]). Refused by default: loopback, link-local, "
           "unspecified, multicast, cloud metadata; the most specific network decides (docs/security.md)"),
    Option("tes_fetch_denied_networks", "networks", [], "addresses TES transfers may not connect to, on top of "
           "the defaults: CIDRs or the names above (e.g. [private]: RFC 1918, 100.64.0.0/10 and fc00::/7)"),
    Option("tes_fetch_ca_bundle", "path", None, "CA certificates (PEM) TES transfers trust for https:// and "
           "FTP over TLS (default: libcurl's own bundle)"),
    Option("tes_ftp_tls", "choice", "scheme", "TLS for TES ftp:// URLs: scheme (as the URL says: ftps:// "
           "implicit TLS, ftp:// none), try (ftp:// asks for AUTH TLS, plain if the server has none), required "
           "(ftp:// fails without TLS for login and data)", ("scheme", "try", "required")),
    Option("tes_service_id", "str", "org.pulsar-lite.tes", "service-info id (reverse domain name)"),
    Option("tes_service_name", "str", "pulsar_lite TES", "service-info name"),
    Option("tes_organization_name", "str", "pulsar_lite", "service-info organization.name"),
    Option("tes_organization_url", "str", "https://github.com/galaxyproject/pulsar",
           "service-info organization.url"),
    Option("tes_storage", "list", [], "storage locations advertised in service-info (e.g. https://data.example.org/)"),
    Option("tes_task_record_retention", "timeout", 30 * 86400.0, "seconds a TES task's record (id, state, name, "
           "tags, times, exit codes, system_logs, outputs; no inputs' contents, no files) is kept once job_retention "
           "has removed its job and files: GET and ListTasks answer from it until then. None = for good"),
)

APP_OPTIONS: tuple[Option, ...] = (
    Option("host", "str", "127.0.0.1", "address the REST face listens on"),
    Option("port", "int", 8913, "port the REST face listens on"),
    Option("private_token", "str", None, "shared secret clients must send (query private_token= or Authorization: Bearer)"),
    Option("persistence_directory", "path", "var/persisted_data", "holds the job database (pulsar_lite.sqlite, WAL)"),
    Option("managers", "dict", None, "named managers: {name: {type: ..., num_concurrent_jobs: ...}}"),
    Option("manager", "dict", None, "the single default manager's options (Pulsar style)"),
    Option("tool_dependency_dir", "path", "dependencies", "root of the galaxy_packages dependency resolver"),
    Option("dependency_resolution", "dict", None, "galaxy-tool-util dependency resolution (resolvers: [...], cache, ...)"),
    Option("dependency_resolvers_config_file", "path", None, "galaxy dependency_resolvers_conf.xml"),
    Option("file_cache_dir", "path", None, "enables the /cache routes (client-side input caching)"),
    Option("max_upload_size", "int", 0, "largest accepted request body in bytes; 0 = no limit"),
    Option("max_request_line", "int", 16 * 1024 * 1024, "longest accepted request line (submit carries JSON in the query)"),
    Option("web", "bool", True, "serve the REST face; false = message queue only (like serve --no-web)"),
    Option("ssl_pem", "path", None, "serve HTTPS: a PEM file holding the certificate (with its chain) and its "
           "private key (Pulsar's key); paste loads it again on SIGHUP"),
    Option("web_threads", "int", 0, "threads running REST requests; 0 = the server's default (16). An upload "
           "holds one for as long as its body takes to arrive, so this bounds the uploads in progress at once "
           "(paste: every open connection holds one, idle or not)"),
    Option("web_io_timeout", "timeout", 60.0, "seconds a client may stay silent in the middle of a request "
           "before its connection is dropped (paste: every read and write, and idle kept-alive connections; "
           "granian: reading the request headers, at most 60 s; granian has no timeout for a stalled body)"),
    Option("web_server", "choice", "paste", "HTTP server of the REST face: paste (default) or granian "
           "(faster, pip install 'pulsar_lite[granian]')", ("paste", "granian")),
    Option("daemon_cpus", "cpus", "auto", "CPUs the daemon's own threads run on (its Python code uses one at a "
           "time anyway; spread over several, every hand-over of the interpreter lock is a cross-CPU wake-up): auto = "
           "one of the CPUs it may use, off = all of them, or CPU numbers (3, 2,3, 0-1). Job processes always "
           "get every CPU the daemon was started with"),
    Option("staging_concurrency", "int", 4, "jobs pre/postprocessed at once, across all managers"),
    Option("job_retention", "timeout", None, "seconds a job is kept once it has finished (or was set up and never "
           "submitted) when no client cleans it up; then its record and directory are removed. None = for good. "
           "Set it well above the longest time Galaxy may take to collect a finished job (e.g. 864000, 10 days)"),
    Option("recycled_job_directories", "int", 64, "emptied directory trees of cleaned jobs kept for new jobs "
           "(saves nine mkdir and rmdir per job); 0 = delete them"),
    Option("store_synchronous", "choice", "full", "what survives a power cut: full = job state and every file pushed to a job (each upload "
           "and cache entry is on disk before it is answered); normal = a killed daemon loses nothing, an OS crash or "
           "power cut may lose the last changes and leave recent uploads short",
           ("full", "normal")),
    Option("store_busy_timeout", "float", 30.0, "seconds a write waits for the job store while another program holds "
           "it locked; then the write fails (the request gets 503, a job's change is retried) and /readyz says so"),
    Option("log_level", "choice", "INFO", "DEBUG, INFO, WARNING or ERROR", ("DEBUG", "INFO", "WARNING", "ERROR")),
    Option("log_format", "choice", "text", "text lines, or json: one JSON object per line (time, level, logger, "
           "message, manager, job_id) for Loki, ELK and the like", ("text", "json")),
    Option("metrics_token", "str", None, "token Prometheus must send for /metrics (Authorization: Bearer); unset: "
           "/metrics is open, like /healthz"),
    Option("metrics_port", "int", None, "also serve /metrics on this port of its own (a daemon without a web face)"),
    Option("metrics_host", "str", "127.0.0.1", "address of metrics_port"),
    Option("ssh_known_hosts", "path", None, "known_hosts file that rsync/scp staging (remote_rsync_transfer, "
           "remote_scp_transfer) checks Galaxy hosts' keys against (unset: ssh's own, ~/.ssh/known_hosts)"),
    Option("ssh_strict_host_key_checking", "bool", True, "rsync/scp staging refuses a Galaxy host whose key is not "
           "in the known_hosts file; false: trusts a new host's key once and remembers it (a changed key is "
           "still refused)"),
    Option("send_stdout_update", "bool", False, "live tool output: while a job runs, post the new bytes of its "
           "tool_stdout/tool_stderr to Galaxy's job-files API (jobs with remote staging and a files_endpoint), "
           "which appends them for the user to watch"),
    Option("stdout_update_interval", "float", 3.0, "seconds between two posts of a job's new live output"),
    Option("stdout_update_timeout", "float", 30.0, "seconds one post of live output may take"),
    Option("stdout_update_chunk_size", "int", 524288, "bytes of each stream one post of live output carries at most"),
    *AMQP_OPTIONS,
    *TES_OPTIONS,
    *MANAGER_OPTIONS[2:],  # every manager option but type/num_concurrent_jobs is an app-wide default too
)
APP_OPTION_MAP = {o.key: o for o in APP_OPTIONS}
#: App keys passed through verbatim to galaxy-tool-util's dependency manager.
APP_PREFIXES = ("conda_",)

#: Pulsar app.yml keys that change who may run jobs: never ignored. pulsar_lite refuses to start with them, with
#: the reason, rather than serve without what the site believes it has.
PULSAR_REFUSED = {
    "user_auth": "pulsar_lite does not check the Galaxy user of each job (Pulsar's user_auth: allow_all, userlist, "
                 "oidc); it would run every job anyone with the token sends. Remove the key to accept that, or "
                 "keep Pulsar for this site",
}

#: Pulsar app.yml keys pulsar_lite knows but does not act on (yet): a warning.
PULSAR_UNSUPPORTED = frozenset({
    "object_store_config_file", "object_store_config", "object_store_file_path",
    "object_store_job_working_directory", "object_store_new_file_path", "object_store_umask",
    "tool_config_files", "tool_config_file", "sentry_dsn", "sentry_event_level",
    "job_metrics_config_file", "job_metrics", "job_managers_config", "ensure_cleanup",
    "cvmfsexec", "job_metrics", "config_dir",
    "use_uwsgi", "uwsgi", "logging",
})
