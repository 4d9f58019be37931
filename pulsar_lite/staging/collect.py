"""Which job files are outputs, and where each goes (server-side postprocessing).

Mirrors the client's collection order: explicit working-directory outputs,
declared outputs and their extra files, the version file, then dynamic
working/metadata/job-directory files (patterns, collector descriptions and
``galaxy.json`` references). Each candidate is a (path type, server path,
client path) triple.
"""
from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from dataclasses import dataclass

from .. import wire

log = logging.getLogger(__name__)

COMMAND_VERSION = "COMMAND_VERSION"


@dataclass(frozen=True)
class Candidate:
    path_type: str
    server_path: str
    client_path: str


def _references(realized_sources: list) -> tuple[set, list]:
    filenames: set[str] = set()
    extra_prefixes: list[str] = []

    def record(value):
        if isinstance(value, list):
            for item in value:
                record(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key == "filename" and isinstance(item, str):
                    filenames.add(item)
                elif key == "extra_files" and isinstance(item, str):
                    extra_prefixes.append(item)
                if isinstance(item, (list, dict)):
                    record(item)

    for source in realized_sources or []:
        lines = [source.get("contents", "")]
        if source.get("type") == "legacy_galaxy":
            lines = source.get("contents", "").splitlines()
        for line in lines:
            try:
                record(json.loads(line))
            except ValueError:
                log.warning("cannot parse %s as JSON", source.get("path"))
    return filenames, extra_prefixes


class _DynamicMatcher:
    def __init__(self, patterns: list | None, collector_descriptions: list | None):
        self.patterns = [re.compile(p) for p in (patterns or [wire.DEFAULT_DYNAMIC_OUTPUTS])]
        self.collectors = []
        for description in collector_descriptions or []:
            try:
                from galaxy.tool_util.parser.output_collection_def import dataset_collection_description

                self.collectors.append(dataset_collection_description(**description))
            except Exception as exc:  # a bad description must not break the other outputs
                log.warning("ignoring dataset collector description %r: %s", description, exc)

    def __call__(self, name: str) -> bool:
        for collector in self.collectors:
            directory = getattr(collector, "directory", None)
            if directory:
                prefix = directory.rstrip("/") + "/"
                if not name.startswith(prefix):
                    continue
                if re.match(collector.pattern, name[len(prefix):]):
                    return True
            elif re.match(collector.pattern, name):
                return True
        return any(p.match(name) for p in self.patterns)


def candidates(job_dir, client_outputs: dict, realized_sources: list) -> list[Candidate]:
    working_dir = client_outputs.get("working_directory")
    working_listing = job_dir.listing("working")
    outputs_listing = job_dir.listing("outputs")
    metadata_listing = job_dir.listing("metadata")
    found: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    output_files = list(client_outputs.get("output_files") or [])

    # 1. explicit working directory outputs (from_work_dir)
    for source, destination in client_outputs.get("work_dir_outputs") or []:
        name = os.path.relpath(source, working_dir) if working_dir else os.path.basename(source)
        in_directory = [f for f in working_listing if f.startswith(name + "/")]
        if in_directory:
            for remote in in_directory:
                client_path = os.path.join(destination, os.path.relpath(remote, name))
                found.append(Candidate("output_workdir", os.path.join(job_dir.working, remote), client_path))
                seen.add((remote, client_path))
        else:
            if name not in working_listing:
                matching = fnmatch.filter(working_listing, name)
                if matching:
                    name = matching[0]
            found.append(Candidate("output_workdir", os.path.join(job_dir.working, name), destination))
            seen.add((name, destination))
        if destination in output_files:
            output_files.remove(destination)

    # 2. declared outputs and their extra files
    for output in output_files:
        base = os.path.basename(output)
        if base in outputs_listing:
            found.append(Candidate("output", os.path.join(job_dir.outputs, base), output))
        extra_prefix = base[: -len(".dat")] + "_files/"
        for remote in outputs_listing:
            if remote.startswith(extra_prefix):
                found.append(Candidate("output", os.path.join(job_dir.outputs, remote),
                                       os.path.join(os.path.dirname(output), remote)))

    # 3. the tool version file
    version_file = client_outputs.get("version_file")
    if version_file and COMMAND_VERSION in outputs_listing:
        found.append(Candidate("output", os.path.join(job_dir.outputs, COMMAND_VERSION), version_file))

    # 4./5. dynamic outputs in working, metadata and job directories
    matcher = _DynamicMatcher(client_outputs.get("dynamic_outputs"), client_outputs.get("dataset_collector_descriptions"))
    filenames, extra_prefixes = _references(realized_sources)
    directories = (
        ("output_workdir", working_dir, working_listing, job_dir.working),
        ("output_metadata", client_outputs.get("metadata_directory"), metadata_listing, job_dir.metadata),
        ("output_jobdir", client_outputs.get("job_directory"), job_dir.listing("", recursive=False), job_dir.path),
    )
    for path_type, client_directory, listing, server_directory in directories:
        if client_directory is None:
            continue
        for name in listing:
            if not (matcher(name) or name in filenames or any(name.startswith(p) for p in extra_prefixes)):
                continue
            client_path = os.path.join(client_directory, name)
            if (name, client_path) in seen:
                continue
            server_path = os.path.join(server_directory, name)
            if path_type == "output_jobdir" and not os.path.isfile(server_path):
                continue
            seen.add((name, client_path))
            found.append(Candidate(path_type, server_path, client_path))
    return found
