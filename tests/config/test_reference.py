"""docs/configuration.md is generated from the schema; it must not drift from it."""
from pathlib import Path

from pulsar_lite.config.reference import render
from pulsar_lite.config.schema import APP_OPTIONS, MANAGER_OPTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_reference_is_the_schemas():
    assert DOC.read_text() == render(), (
        "docs/configuration.md differs from the schema: run python -m pulsar_lite.config.reference > "
        "docs/configuration.md")


def test_every_key_is_in_the_reference():
    text = render()
    for option in APP_OPTIONS + MANAGER_OPTIONS:
        assert f"| `{option.key}` |" in text
