"""Random (version 4) UUIDs, from the operating system's random bytes read a batch at a time.

``uuid.uuid4()`` asks the kernel for 16 bytes each time, a system call per id; an issue takes
about ten ids on its way (its own, its events', its classification's), and on a busy machine
those calls were 1 to 4 % of a service's CPU. Here one call serves 256 ids, of the same random
source. Each thread draws from its own batch, and a forked child drops the batch it inherited,
so no two ids come from the same bytes.
"""

from __future__ import annotations

import os
import threading
import uuid

_BATCH = 16 * 256


class _Pool(threading.local):
    def __init__(self) -> None:
        self.random = b""
        self.at = 0


_pool = _Pool()
_forks_watched: list[bool] = []


def new_id() -> uuid.UUID:
    """A random UUID, as ``uuid.uuid4()`` makes."""
    pool = _pool
    at = pool.at
    if at >= len(pool.random):
        if not _forks_watched:
            _forks_watched.append(True)
            os.register_at_fork(after_in_child=_forget)
        pool.random, at = os.urandom(_BATCH), 0
    pool.at = at + 16
    return uuid.UUID(bytes=pool.random[at : at + 16], version=4)


def _forget() -> None:
    _pool.random, _pool.at = b"", 0
