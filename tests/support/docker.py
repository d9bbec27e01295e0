"""Is a Docker engine answering? (The client alone is not enough for testcontainers.)"""

from __future__ import annotations

import functools


@functools.cache
def docker_available() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False
