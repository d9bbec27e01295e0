"""The fork server the end-to-end tests start services with: a forked ``escalation`` runs the
command line it was given, with the environment and log file it was given, and reports how it
ended as :class:`subprocess.Popen` would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from shared.ports import free_port
from tests.support.forkserver import ForkServer

pytestmark = pytest.mark.single_db


def test_a_command_runs_with_its_arguments_and_log_and_reports_its_exit_status(
    forks: ForkServer, tmp_path: Path
) -> None:
    log = tmp_path / "help.log"
    helped = forks.start(["--help"], dict(os.environ), log)
    assert helped.wait(timeout=60) == 0
    assert "Usage:" in log.read_text()
    refused = forks.start(["no-such-command"], dict(os.environ), tmp_path / "refused.log")
    assert refused.wait(timeout=60) == 2
    assert refused.poll() == 2


async def test_a_service_gets_its_environment_and_dies_by_the_signal_sent(
    forks: ForkServer, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'none.db'}",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing there
        "HTTP_HOST": "127.0.0.1",
        "HTTP_INTAKE_PORT": str(port),
    }
    intake = forks.start(["run", "intake"], env, tmp_path / "intake.log")
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail((tmp_path / "intake.log").read_text())
        assert intake.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            intake.wait(timeout=0.1)
    finally:
        intake.send_signal(signal.SIGKILL)
    assert intake.wait(timeout=20) == -signal.SIGKILL
    intake.kill()  # ended: nothing is sent, nothing raised
