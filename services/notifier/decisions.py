"""Which decision an issue stands on, so that an earlier one is not carried out instead.

An issue classified again (the PSA gave a category, text or ticket type) has two
``issues.classified`` events. The inbox skips a redelivered copy of the first, but not one
replayed from the dead-letter topic after it had failed there: while the issue waits in
``classified`` for its new decision, that replay would route it by the old one. A batch reads
its issues' decisions once, and an event whose decision is not the stored one is skipped; the
stored decision's own event routes the issue.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

from shared.db.base import table_of
from shared.db.listed import keyed, listed_ids
from shared.db.models import Classification
from shared.db.staged import joined
from shared.events.models import IssueClassified

DECISIONS_KEY = "notifier.decisions"

# What decides where an issue goes and what the partner is told. Not the reasons or the
# cluster: linking an issue to an outage cluster later rewrites both.
DECIDING = ("outcome", "vehicle", "category", "category_source", "partner_role", "rule_id")

Decided = tuple[str | None, ...]


async def preload_decisions(session: AsyncSession, events: list[IssueClassified]) -> None:
    """The stored decisions of the issues ``events`` are about, in one query."""
    statements = await joined(session)
    rows = await statements.fetch(
        _decisions_of_issues,
        {"keys": listed_ids({e.issue_id for e in events}, statements.dialect)},
    )
    session.info[DECISIONS_KEY] = {row[0]: _plain(row[1:]) for row in rows}


def superseded(session: AsyncSession, event: IssueClassified) -> bool:
    """Whether the issue's stored decision is another than ``event``'s. An issue with none
    stored (or a batch not preloaded) takes the event as it is."""
    stored: Decided | None = session.info.get(DECISIONS_KEY, {}).get(event.issue_id)
    return stored is not None and stored != _plain(getattr(event, name) for name in DECIDING)


def _plain(values: Iterable[Any]) -> Decided:
    """Enums as their values, as the row holds them."""
    return tuple(None if v is None else str(v) for v in values)


def _decisions_of_issues(dialect: str) -> ClauseElement:
    return keyed(table_of(Classification), "issue_id", dialect, columns=("issue_id", *DECIDING))
