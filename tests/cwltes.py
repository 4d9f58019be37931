"""cwl-tes from PyPI in a virtualenv of its own (``.cache/cwl-tes``), for tests/integration/test_tes_cwl_tes.py.

cwl-tes 0.3.0 (2019, the last release) pins cwltool 1.0.20191022103248, whose schema-salad needs
rdflib-jsonld 0.4.0: a source-only release whose setup.py runs ``use_2to3``, which setuptools 58 removed.
So the virtualenv gets setuptools < 58 first and builds without build isolation (Python 3.11 still has
lib2to3; 3.13 does not). ``cryptography`` is added for PyJWT's RS256: cwl-tes checks ``--token`` as an RS256
JWT before it sends anything, and PyJWT cannot without it. Built by ``python -m tests.clients``
(scripts/test.sh) or on first use by the test's fixture.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import client_venv_root

#: each step is one ``pip install`` (the first two make the third possible on Python 3.11)
CWL_TES_STEPS = (
    ("setuptools<58", "wheel"),
    ("--no-build-isolation", "rdflib-jsonld==0.4.0"),
    ("--no-build-isolation", "cwl-tes==0.3.0", "cryptography"),
)


def cwl_tes_venv() -> Path:
    return client_venv_root().parent / "cwl-tes"


def ensure_cwl_tes_venv() -> Path:
    """Create (once) the cwl-tes virtualenv; return its ``cwl-tes`` command. Raises CalledProcessError (pip's
    output in ``stderr``) when it cannot be built."""
    venv = cwl_tes_venv()
    python, command = venv / "bin" / "python", venv / "bin" / "cwl-tes"
    marker = venv / ".ready"
    recipe = repr(CWL_TES_STEPS)
    if marker.exists() and marker.read_text() == recipe and command.exists():
        return command
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True, text=True)
    for step in CWL_TES_STEPS:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *step],
                       check=True, capture_output=True, text=True)
    subprocess.run([str(command), "--version"], check=True, capture_output=True, text=True)
    marker.write_text(recipe)
    return command
