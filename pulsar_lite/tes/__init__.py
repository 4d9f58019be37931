"""The GA4GH Task Execution Service (TES v1.1) face, on the same engine as the Pulsar faces.

* ``protocol.py`` — the TES facts: states, views, the task document's fields and checks, paging tokens
* ``service.py`` — tasks as jobs of the engine: create, read, list, cancel; the stager of their files
* ``runtime.py`` — the job script that runs executors in containers (podman, docker, apptainer)
* ``safe_paths.py`` — the job script's shell functions that never follow a symlink out of the task's mirror
* ``policy.py`` — what a task may ask (URL schemes, images, strict backend parameters), checked at create
* ``staging.py`` — inputs and outputs: http(s), file:// under allowed roots, inline content
* ``face.py`` — the HTTP routes under /ga4gh/tes/v1
* ``auth.py`` — who may use them (``tes_token``, ``tes_users_file``), ``passwords.py`` — the users file
* ``cors.py`` — CORS headers and preflights for browser clients (``tes_cors_origins``)
"""
from .service import TesService, is_task_id

__all__ = ["TesService", "is_task_id"]
