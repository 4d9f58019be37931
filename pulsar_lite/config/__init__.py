"""Load and validate configuration (app.yml, Pulsar's server.ini, environment).

``load_config(path)`` accepts an ``app.yml``, a ``server.ini`` or a directory
holding either; ``load_config(None)`` gives the embedded defaults. Unknown or
mistyped keys raise :class:`ConfigError` naming the key and the file; known
Pulsar keys that pulsar_lite does not act on only log a warning.
"""
from __future__ import annotations

import configparser
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigError
from ..wire import DEFAULT_MANAGER, valid_manager_name
from .schema import (
    APP_OPTION_MAP,
    APP_OPTIONS,
    APP_PREFIXES,
    MANAGER_OPTION_MAP,
    MANAGER_OPTIONS,
    MANAGER_PREFIXES,
    PULSAR_REFUSED,
    PULSAR_UNSUPPORTED,
    Option,
    coerce,
)

log = logging.getLogger(__name__)

_PATH_KEYS = {o.key for o in APP_OPTIONS + MANAGER_OPTIONS if o.kind == "path"}


@dataclass
class ManagerConfig:
    name: str
    values: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None


@dataclass
class AppConfig:
    values: dict[str, Any]
    managers: dict[str, ManagerConfig]
    source: str | None = None
    base_dir: str = "."
    passthrough: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def store_path(self) -> str:
        return os.path.join(self.persistence_directory, "pulsar_lite.sqlite")


def _where(source: str | None) -> str:
    return source or "the built-in configuration"


def _coerce(option: Option, value: Any, source: str | None, context: str = "") -> Any:
    try:
        return coerce(option, value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{_where(source)}: key '{context}{option.key}' has an invalid value {value!r}: {exc}"
        ) from None


def _resolve(path: str | None, base_dir: str) -> str | None:
    if path is None:
        return None
    path = os.path.expanduser(path)
    return os.path.abspath(os.path.join(base_dir, path))


def _read_yaml(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def _read_ini(path: str) -> tuple[dict, dict, str | None]:
    """Return (server options, app options, app.yml path) from a Pulsar server.ini."""
    parser = configparser.ConfigParser(defaults={"here": os.path.dirname(os.path.abspath(path))},
                                       interpolation=configparser.BasicInterpolation())
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"{path}: cannot read as an ini file: {exc}") from None
    server: dict[str, Any] = {}
    if parser.has_section("server:main"):
        for key in ("host", "port"):
            if parser.has_option("server:main", key):
                server[key] = parser.get("server:main", key)
    app: dict[str, Any] = {}
    app_yml = None
    if parser.has_section("app:main"):
        ignored = {"use", "paste.app_factory", "here", "filter-with"}
        for key, value in parser.items("app:main"):
            if key == "app_config":
                app_yml = value
            elif key not in ignored:
                app[key] = value
    if app_yml is None:
        candidate = os.path.join(os.path.dirname(os.path.abspath(path)), "app.yml")
        if os.path.exists(candidate):
            app_yml = candidate
    elif not os.path.exists(app_yml) and os.path.exists(app_yml + ".sample"):
        app_yml = app_yml + ".sample"
    return server, app, app_yml


def _env_overrides(raw: dict) -> dict:
    result = dict(raw)
    for name, value in os.environ.items():
        if name.startswith("PULSAR_CONFIG_OVERRIDE_"):
            result[name[len("PULSAR_CONFIG_OVERRIDE_"):].lower()] = value
    for name, value in os.environ.items():
        if name.startswith("PULSAR_CONFIG_") and not name.startswith("PULSAR_CONFIG_OVERRIDE_"):
            key = name[len("PULSAR_CONFIG_"):].lower()
            if key != "dir":
                result.setdefault(key, value)
    return result


def load_config(path: str | None = None, overrides: dict | None = None) -> AppConfig:
    """Load configuration from ``path`` (file or directory) or the defaults."""
    raw: dict[str, Any] = {}
    source = None
    base_dir = os.getcwd()
    if path:
        path = os.path.abspath(path)
        if os.path.isdir(path):
            for name in ("app.yml", "server.ini"):
                if os.path.exists(os.path.join(path, name)):
                    path = os.path.join(path, name)
                    break
            else:
                raise ConfigError(f"{path}: no app.yml or server.ini in this directory")
        if not os.path.exists(path):
            raise ConfigError(f"{path}: no such file")
        base_dir = os.path.dirname(path)
        if path.endswith(".ini"):
            server, app, app_yml = _read_ini(path)
            raw.update(app)
            source = path
            if app_yml:
                raw.update(_read_yaml(app_yml))
                source = app_yml
                base_dir = os.path.dirname(os.path.abspath(app_yml))
            raw.update(server)
        else:
            raw = _read_yaml(path)
            source = path
    raw = _env_overrides(raw)
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_config(raw, source=source, base_dir=base_dir)


def build_config(raw: dict, source: str | None = None, base_dir: str = ".") -> AppConfig:
    values: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in raw.items():
        if key in APP_OPTION_MAP:
            values[key] = _coerce(APP_OPTION_MAP[key], value, source)
        elif key.startswith(APP_PREFIXES):
            passthrough[key] = value
        elif key in PULSAR_REFUSED:
            raise ConfigError(f"{_where(source)}: Pulsar key '{key}' is refused: {PULSAR_REFUSED[key]}")
        elif key in PULSAR_UNSUPPORTED:
            warnings.append(f"{_where(source)}: Pulsar key '{key}' is not supported by pulsar_lite and is ignored")
        else:
            raise ConfigError(f"{_where(source)}: unknown configuration key '{key}'")
    for option in APP_OPTIONS:
        values.setdefault(option.key, option.default)
    if values["persistence_directory"] == "__none__":
        warnings.append(f"{_where(source)}: persistence_directory '__none__' is ignored: "
                        "pulsar_lite always keeps durable job state")
        values["persistence_directory"] = APP_OPTION_MAP["persistence_directory"].default
    for key in _PATH_KEYS | {"persistence_directory", "tool_dependency_dir", "file_cache_dir"}:
        if key in values and values[key] is not None:
            values[key] = _resolve(values[key], base_dir)
    if values.get("managers") and values.get("manager"):
        raise ConfigError(f"{_where(source)}: set either 'managers' or 'manager', not both")
    manager_sections = values.pop("managers") or {}
    single = values.pop("manager")
    if single is not None:
        single = dict(single)
        manager_sections = {single.pop("name", DEFAULT_MANAGER): single}
    if not manager_sections:
        manager_sections = {DEFAULT_MANAGER: {}}
    managers = {}
    for name, section in manager_sections.items():
        managers[str(name)] = _build_manager(str(name), section, values, source, base_dir, warnings)
    config = AppConfig(values=values, managers=managers, source=source, base_dir=base_dir,
                       passthrough=passthrough, warnings=warnings)
    for warning in warnings:
        log.warning(warning)
    return config


def _build_manager(name: str, section: Any, app_values: dict, source: str | None, base_dir: str,
                   warnings: list[str]) -> ManagerConfig:
    from ..managers import manager_spec  # registry is data: no optional imports here

    if not valid_manager_name(name):
        raise ConfigError(f"{_where(source)}: invalid manager name '{name}'")
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{_where(source)}: manager '{name}' must be a mapping of options")
    context = f"managers.{name}."
    manager_type = _coerce(MANAGER_OPTION_MAP["type"], section.get("type", "queued_python"), source, context)
    spec = manager_spec(manager_type, source=_where(source), manager=name)
    values: dict[str, Any] = {}
    env: dict[str, str] = {}
    for key, value in section.items():
        if key == "name":
            continue
        if key in MANAGER_OPTION_MAP:
            values[key] = _coerce(MANAGER_OPTION_MAP[key], value, source, context)
        elif key in spec.options:
            values[key] = _coerce(spec.options[key], value, source, context)
        elif spec.prefixes and key.startswith(spec.prefixes):  # e.g. queued_cli's job_*: scheduler options
            prefix = next(p for p in spec.prefixes if key.startswith(p))
            values.setdefault(f"{prefix}params", {})[key[len(prefix):]] = value
        elif key.startswith(MANAGER_PREFIXES):
            env[key[len("env_"):]] = str(value)
        elif key in PULSAR_UNSUPPORTED:
            warnings.append(f"{_where(source)}: Pulsar key '{context}{key}' is not supported and is ignored")
        else:
            raise ConfigError(f"{_where(source)}: unknown key '{context}{key}' for manager type '{manager_type}'")
    for option in MANAGER_OPTIONS:
        if option.key not in values:
            values[option.key] = app_values.get(option.key, option.default)
    for key, option in spec.options.items():
        values.setdefault(key, option.default)
        if option.required and values[key] is None:
            raise ConfigError(f"{_where(source)}: manager '{name}' (type {manager_type}) needs '{context}{key}': "
                              f"{option.help}")
    for prefix in spec.prefixes:
        values.setdefault(f"{prefix}params", {})
    for key in _PATH_KEYS:
        if values.get(key) is not None:
            values[key] = _resolve(values[key], base_dir)
    return ManagerConfig(name=name, values=values, env=env)
