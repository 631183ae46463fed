"""Each setting is declared once, in workers/config.py (its field, its default, its Var):
.env.example and the configuration table of docs/operations.md are generated from there
and must be current (``python -m workers settings-docs`` rewrites them)."""

from __future__ import annotations

from pathlib import Path

from workers.__main__ import settings_docs_text
from workers.config import Settings, settings_vars

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_and_the_docs_table_are_current() -> None:
    env, ops = settings_docs_text(ROOT)
    assert (ROOT / ".env.example").read_text() == env, "run: python -m workers settings-docs"
    assert (ROOT / "docs" / "operations.md").read_text() == ops, (
        "run: python -m workers settings-docs"
    )


def test_every_setting_has_one_variable_and_a_meaning() -> None:
    found = settings_vars()
    assert len(found) == len(Settings.__dataclass_fields__)
    names = [var.env for _, var in found]
    assert len(names) == len(set(names))
    assert all(var.doc for _, var in found)
    rows = {var.env for _, var in found}
    assert all(var.row in rows for _, var in found if var.row)
