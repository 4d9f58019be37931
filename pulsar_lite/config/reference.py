"""docs/configuration.md, generated from the schema (a test fails when the two drift apart).

    python -m pulsar_lite.config.reference > docs/configuration.md
"""
from __future__ import annotations

import sys

from .schema import AMQP_OPTIONS, APP_OPTIONS, MANAGER_OPTIONS, PULSAR_REFUSED, PULSAR_UNSUPPORTED, TES_OPTIONS, Option

HEADER = """# Configuration reference

Generated from `pulsar_lite/config/schema.py` by `python -m pulsar_lite.config.reference`; do not edit by
hand (`tests/config/test_reference.py` fails when this file and the schema differ). `app.yml.sample` shows
every key commented out with its default.

* An unknown or mistyped key stops start-up with an error naming the key and the file.
* Pulsar's keys work as they are. Pulsar keys pulsar_lite does not act on are accepted with a warning
  (listed at the end).
* `PULSAR_CONFIG_OVERRIDE_<KEY>` environment variables always win; `PULSAR_CONFIG_<KEY>` fill keys the
  file leaves unset.
* Relative paths are relative to the configuration file's directory.
* Every manager option below may also be set at the top level of app.yml: it is then the default for every
  manager.
"""


def _default(option: Option) -> str:
    value = option.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if option.kind == "octal" and isinstance(value, int):
        return f"{value:04o}"
    return f"`{value}`"


def _table(options) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for option in options:
        kind = option.kind if not option.choices else " \\| ".join(option.choices)
        meaning = option.help.replace("|", "\\|") + (" **(required)**" if option.required else "")
        lines.append(f"| `{option.key}` | {kind} | {_default(option)} | {meaning} |")
    return lines


def render() -> str:
    from ..managers import REGISTRY

    amqp = {o.key for o in AMQP_OPTIONS}
    tes = {o.key for o in TES_OPTIONS}
    managers = {o.key for o in MANAGER_OPTIONS}
    server = [o for o in APP_OPTIONS if o.key not in amqp | tes | managers]
    sections = [HEADER, "## Server and app-wide", "", *_table(server), "",
                "## Message queue (AMQP)", "", *_table(AMQP_OPTIONS), "",
                "## GA4GH TES", "", *_table(TES_OPTIONS), "",
                "## Every manager", "",
                "Under `managers: {<name>: {...}}` (or `manager:` for the single default one). `env_<NAME>: value` "
                "exports NAME=value in every job of the manager.", "", *_table(MANAGER_OPTIONS), ""]
    for name, spec in sorted(REGISTRY.items()):
        sections += [f"## Manager type `{name}`", "", spec.summary + ".", ""]
        if spec.prefixes:
            sections += [f"Open-ended keys: {', '.join(f'`{p}*`' for p in spec.prefixes)} (passed to the scheduler "
                         "as Pulsar passes them; see docs/managers.md).", ""]
        if spec.requires:
            sections += [f"Needs the Python package(s): {', '.join(f'`{pkg}`' for _, pkg in spec.requires)}.", ""]
        if spec.options:
            sections += [*_table(spec.options.values()), ""]
    sections += ["## Pulsar keys that stop start-up", "",
                 *[f"* `{key}`: {why}." for key, why in sorted(PULSAR_REFUSED.items())], "",
                 "## Pulsar keys accepted with a warning and otherwise ignored", "",
                 ", ".join(f"`{key}`" for key in sorted(PULSAR_UNSUPPORTED)), ""]
    return "\n".join(sections)


if __name__ == "__main__":
    sys.stdout.write(render())
