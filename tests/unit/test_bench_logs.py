"""`make bench --logs DIR` keeps the run's logs, and only them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import keep_logs

pytestmark = pytest.mark.unit


def test_the_logs_of_a_run_are_copied_under_the_same_paths_and_nothing_else(
    tmp_path: Path,
) -> None:
    workdir, logs = tmp_path / "run", tmp_path / "kept"
    written = {
        "broker.log": "broker",
        "sqlite-pipeline-1000/intake.log": "intake",
        "sqlite-pipeline-1000/notifier.log": "notifier",
        "sqlite-pipeline-1000/e_1.db": "database",
        "sqlite-pipeline-1000/e_1.db-gate": "",
    }
    for name, text in written.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)

    keep_logs(workdir, logs)

    kept = {str(p.relative_to(logs)): p.read_text() for p in logs.rglob("*") if p.is_file()}
    assert kept == {name: text for name, text in written.items() if name.endswith(".log")}
