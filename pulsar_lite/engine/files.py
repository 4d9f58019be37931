"""A job's files as the faces see them (part of ``JobEngine``): uploads before submit, outputs after."""
from __future__ import annotations

from typing import BinaryIO

from .. import wire
from ..errors import BadRequest, Conflict, NotFound
from ..logs import for_job
from .jobdir import JobDirectory, check_job_id, clean_name


class JobFiles:
    def _writable_job(self, manager: str, job_id: str) -> JobDirectory:
        """A job that accepts staged files: set up but not yet submitted."""
        job_dir = self.job_directory(manager, job_id)
        with self._lock(manager, job_id):
            record = self.store.get(manager, job_id)
            if record is None or record.terminal:
                self._fresh_job(manager, job_dir)
            elif record.state != wire.SETUP:
                raise Conflict(f"job {job_id} was already submitted ({record.state}); files can no longer change")
            elif not job_dir.exists():
                job_dir.create(self.manager_config(manager).job_directory_mode)
        return job_dir

    @for_job
    def upload(self, manager: str, job_id: str, name: str | None, file_type: str | None,
               stream: BinaryIO | None, length: int | None, cache_path: str | None = None) -> str:
        job_id = check_job_id(job_id)
        job_dir = self.job_directory(manager, job_id)
        job_dir.type_directory(file_type)  # validate type and name before touching anything
        clean_name(name)
        job_dir = self._writable_job(manager, job_id)
        target = job_dir.calculate_path(name, file_type)
        try:
            if cache_path is not None:
                job_dir.copy_in(cache_path, target, durable=self.durable_files)
            else:
                job_dir.write_stream(target, stream, length, limit=self.config.max_upload_size,
                                     durable=self.durable_files)
        except IsADirectoryError:  # the final rename found a directory there (its temporary file is gone)
            raise BadRequest(f"{name!r} is a directory") from None
        return target

    def path(self, manager: str, job_id: str, name: str | None, file_type: str | None) -> str:
        job_id = check_job_id(job_id)
        job_dir = self.job_directory(manager, job_id)
        if file_type in wire.DOWNLOAD_DIRS:
            return job_dir.output_path(name, file_type)
        job_dir.type_directory(file_type)
        record = self.store.get(manager, job_id)
        if record is None:
            job_dir = self._writable_job(manager, job_id)
        return job_dir.calculate_path(name, file_type)

    def open_output(self, manager: str, job_id: str, name: str | None, file_type: str | None) -> tuple[int, int]:
        """A read-only descriptor on a job's output file (the caller closes it) and the file's size."""
        job_id = check_job_id(job_id)
        job_dir = self.job_directory(manager, job_id)
        opened = job_dir.open_regular(job_dir.output_relative(name, file_type or "output"))
        if opened is not None:
            return opened
        raise NotFound(f"no output {name!r} (type {file_type or 'output'}) for job {job_id}")
