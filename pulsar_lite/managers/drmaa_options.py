"""Who decides a queued_drmaa job's native specification (client_submit_params, managers/options.py): Grid
Engine's qsub options as a native specification writes them, Pulsar's default (the client's specification
only when the manager has none) and the merge of the manager's and the client's."""
from __future__ import annotations

from .options import ClientPolicy, Dialect, choose, native_options, option_line

#: Grid Engine's qsub options as a native specification writes them (``-l`` settings one by one)
DIALECT = Dialect("Grid Engine", flags=frozenset({"-V", "-cwd", "-h", "-notify", "-hard", "-soft", "-clear",
                                                 "-verify"}),
                  listed=frozenset({"-l"}),
                  daemon=frozenset({
                      "-N", "-o", "-e", "-i", "-j", "-wd", "-cwd",  # its name, streams and directory
                      "-b", "-S", "-shell", "-C", "-t", "-tc", "-hold_jid_ad",  # what runs, once
                      "-clear", "-@",  # what came before (the daemon's, the manager's), options read from a file
                      "-sync", "-w", "-verify", "-terse", "-now"}))  # whether and when qsub submits
#: what a client may ask for under client_submit_params: append when the manager does not say (resources)
CLIENT_OPTIONS = ("-l h_rt", "-l s_rt", "-l h_cpu", "-l h_vmem", "-l mem_free", "-pe")


def client_policy(values: dict) -> ClientPolicy:
    """What a client's native specification may add; unset, Pulsar's rule: used when the manager has none,
    else dropped (Pulsar logs "being overridden by manager specification")."""
    return ClientPolicy.of(values, DIALECT, "ignore" if values.get("native_specification") else "allow",
                           CLIENT_OPTIONS)


def merged_specification(admin: str | None, client: str | None,
                         policy: ClientPolicy) -> tuple[str | None, list[str]]:
    """The administrator's native specification as written, then the client's options it may add (each quoted
    as a shell word); and what the client lost."""
    admin_groups = DIALECT.groups(native_options(admin, "native_specification"))
    client_groups = DIALECT.groups(native_options(client, "submit_native_specification"))
    chosen = choose(DIALECT, policy, admin_groups, client_groups)
    parts = ([str(admin).strip()] if admin and str(admin).strip() else []) + [option_line(g) for g in chosen.kept]
    return " ".join(parts) or None, chosen.dropped
