"""Random ids drawn from batches of the OS's random bytes: valid, and never twice the same."""

from __future__ import annotations

import os
import threading
import uuid

from shared.ids import new_id


def test_ids_are_random_version_4_uuids_and_none_repeats_across_batches() -> None:
    ids = [new_id() for _ in range(5_000)]  # about twenty batches
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)


def test_threads_draw_from_batches_of_their_own() -> None:
    drawn: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def draw(into: list[uuid.UUID]) -> None:
        into.extend(new_id() for _ in range(1_000))

    threads = [threading.Thread(target=draw, args=(ids,)) for ids in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for ids in drawn for i in ids]
    assert len(set(every)) == len(every) == 4_000


def test_a_forked_child_does_not_repeat_the_ids_its_parent_draws_next() -> None:
    new_id()  # the parent holds a batch it has barely begun
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, b"".join(new_id().bytes for _ in range(100)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        raw = pipe.read()
    os.waitpid(child, 0)
    theirs = {uuid.UUID(bytes=raw[n : n + 16]) for n in range(0, len(raw), 16)}
    ours = {new_id() for _ in range(100)}
    assert len(theirs) == 100
    assert not theirs & ours
