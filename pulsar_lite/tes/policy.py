"""What a task may ask of this daemon, checked at create: a refusal is a 400 with the reason, never a task that
is accepted only to end in SYSTEM_ERROR later.

* URLs: inputs and outputs name a scheme the daemon's staging knows (``KNOWN_SCHEMES``); ``file://`` (or a bare
  absolute path) only when the operator allowed local roots (``tes_file_roots``; which root is checked when
  the file moves, as the path may change meanwhile).
* Images: ``tes_allowed_images``; under apptainer/singularity an image that is not fetched from a registry
  (``instance://`` of a running instance, a local ``.sif``, ``docker-daemon://``, ...) only when a pattern
  other than ``*`` names it.
* ``backend_parameters_strict`` with keys this backend does not act on.
"""
from __future__ import annotations

import fnmatch

from ..errors import BadRequest
from .runtime import SIF_RUNTIMES, registry_image
from .staging import REMOTE_SCHEMES, public_url, scheme

#: URL schemes the staging of inputs and outputs knows: libcurl's, and local files
KNOWN_SCHEMES = (*REMOTE_SCHEMES, "file")
#: patterns that allow any image
ANY = ("*", "any")


def check_urls(task: dict, file_roots: list[str]) -> None:
    """BadRequest for an input or output URL the daemon could not fetch or send."""
    for kind in ("inputs", "outputs"):
        for n, entry in enumerate(task[kind]):
            url = entry.get("url")
            if url is None:  # an input with inline content
                continue
            try:
                found, shown = scheme(url), public_url(url)[:200]  # a password in the URL is never echoed
            except ValueError as exc:  # urllib's own refusal, e.g. "Invalid IPv6 URL"
                raise BadRequest(f"{kind}[{n}].url is not a URL: {exc}") from None
            if found not in KNOWN_SCHEMES:
                raise BadRequest(f"{kind}[{n}].url {shown!r}: {'scheme ' + repr(found) if found else 'no scheme'} is "
                                 f"not one this server can {'fetch' if kind == 'inputs' else 'send to'} "
                                 f"({', '.join(KNOWN_SCHEMES)})")
            if found == "file" and not file_roots:
                raise BadRequest(f"{kind}[{n}].url {shown!r}: file:// URLs are refused here (no tes_file_roots)")


def image_allowed(image: str, patterns: list[str], runtime: str) -> bool:
    """Whether ``tes_allowed_images`` lets executors use ``image``. Under apptainer/singularity, an image that
    is not a registry's needs a pattern other than ``*`` that names it: ``*`` means any image of a registry,
    not a running instance (``instance://``) or a file of the host (a ``.sif``)."""
    explicit = runtime in SIF_RUNTIMES and not registry_image(image)
    for pattern in patterns:
        if pattern in ANY or set(pattern) == {"*"}:
            if not explicit:
                return True
        elif fnmatch.fnmatchcase(image, pattern):
            return True
    return False


def check_images(task: dict, patterns: list[str], runtime: str) -> None:
    for n, executor in enumerate(task["executors"]):
        image = executor["image"]
        if image_allowed(image, patterns, runtime):
            continue
        if runtime in SIF_RUNTIMES and not registry_image(image):
            raise BadRequest(f"executors[{n}].image {image!r} is not a registry's image (docker://, oras://, "
                             f"library:// or a name): under {runtime} it runs only when tes_allowed_images names it "
                             f"explicitly ('*' is not enough)")
        raise BadRequest(f"image {image!r} is not allowed here (tes_allowed_images)")


def check_backend_parameters(resources: dict, supported: tuple[str, ...]) -> list[str]:
    """The ``backend_parameters`` keys this backend does not act on; BadRequest when the task is strict about
    them ("the task must fail" when a key is not supported: refused at once)."""
    unsupported = sorted(set(resources.get("backend_parameters") or {}) - set(supported))
    if unsupported and resources.get("backend_parameters_strict"):
        raise BadRequest(f"backend_parameters not supported here: {', '.join(unsupported)} (backend_parameters_strict;"
                         f" supported: {', '.join(supported)})")
    return unsupported
