"""An escalated issue's Microsoft request: its own, or its outage cluster's.

An issue's own request is the common case. A batch's issues are read (and, on PostgreSQL,
locked) before it is handled, and so is which of them already have their own request; the new
ones are written together when the batch's unit of work flushes, one statement for all. The
request's unique ``dedupe_key`` still decides: were one to exist after all, the batch fails and
is handled again one event at a time, when the look-up finds it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Uuid, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

from services.notifier import microsoft
from services.notifier.connector import SubmissionPolicy
from shared.correlation_lock import lock_correlation_key, lock_correlation_keys, read_signals
from shared.db.base import table_of, utcnow
from shared.db.columnar import inserted
from shared.db.direct import bound
from shared.db.listed import keyed
from shared.db.models import ClusterSignal, Issue, MicrosoftRequest, MicrosoftRequestIssue, Partner
from shared.db.scoped import transaction_scoped
from shared.db.staged import joined, stage
from shared.db.uow import UnitOfWork
from shared.db.upsert import insert_ignoring, insert_or_get
from shared.events.models import IssueClassified
from shared.ids import new_id
from shared.observability import metrics
from shared.vocabulary import Outcome

# What a batch's transaction read or wrote, kept until it ends (see shared.db.scoped).
SIGNALS_KEY = "notifier.cluster_signals"  # issue id -> its cluster signal, or None
CLUSTER_REQUESTS = "notifier.cluster_requests"  # dedupe key -> the cluster's request
ABSORBED = "notifier.absorbed_clusters"  # the clusters whose members were looked at
_Signals = dict[uuid.UUID, ClusterSignal | None]
# Own dedupe key -> whether its request existed when the batch was read.
OWN_KEY = "notifier.own_requests"


async def preload_requests(session: AsyncSession, events: list[IssueClassified]) -> object:
    """The cluster signals of a batch's issues, and which of its escalated issues already have
    their own request, in two queries (two more, and two to take keys, when a cluster may be
    forming around some of them); the signals are returned to be held."""
    issue_ids = {e.issue_id for e in events}
    signals = await read_signals(session, issue_ids)
    # A signal in a cluster stays in it: its issue's request is the cluster's, whatever the
    # classifier does meanwhile. One in none yet may be joining one right now: its key is
    # taken (before the batch's issues, see shared.correlation_lock), so that no cluster
    # forms around it until this batch commits, and the signal is read again under it.
    forming = [signal for signal in signals if signal.cluster_id is None]
    if forming:
        await lock_correlation_keys(
            session, ((s.partner_id, s.service_key, s.region_key) for s in forming)
        )
        await read_signals(session, [signal.issue_id for signal in forming], again=True)
    known = {signal.issue_id: signal for signal in signals}
    preloaded = transaction_scoped(session, SIGNALS_KEY, _Signals)
    preloaded.update({issue_id: known.get(issue_id) for issue_id in issue_ids})
    own = [microsoft.dedupe_key(e.issue_id, None) for e in events if _escalated(e)]
    if own:
        statements = await joined(session)
        existing = {key for (key,) in await statements.fetch(_own_requests, {"keys": own})}
        session.info[OWN_KEY] = {key: key in existing for key in own}
    return signals


def _escalated(event: IssueClassified) -> bool:
    return event.outcome is Outcome.ESCALATED_TO_MICROSOFT and event.vehicle is not None


def _own_requests(dialect: str) -> ClauseElement:
    return keyed(table_of(MicrosoftRequest), "dedupe_key", dialect, columns=("dedupe_key",))


async def open_microsoft_request(
    uow: UnitOfWork,
    *,
    issue: Issue,
    partner: Partner,
    event: IssueClassified,
    support_topic_id: str | None,
    policy: SubmissionPolicy,
) -> MicrosoftRequest:
    """Insert the request for this issue (or its cluster) unless it exists; return it (a new
    issue's own request as written, not attached to the session; it is not changed here).

    The unique ``dedupe_key`` decides races between notifier instances. Cluster membership is
    read from the database under the correlation key's lock, so a cluster that formed after
    this issue was classified is still honoured.
    """
    assert event.vehicle is not None
    cluster_id = await _current_cluster(uow, issue)
    key = microsoft.dedupe_key(issue.id, cluster_id)
    title = microsoft.build_title(issue, clustered=cluster_id is not None)
    description = microsoft.build_description(issue, event)
    contact = microsoft.primary_contact(issue)
    severity = event.severity.value
    submission, submission_error = policy.initial(
        partner_id=partner.id, vehicle=event.vehicle.value, support_topic_id=support_topic_id
    )
    now = utcnow()
    values = {
        "id": new_id(),
        "partner_id": partner.id,
        "dedupe_key": key,
        "title": title,
        "description": description,
        "severity": severity,
        "support_topic_id": support_topic_id,
        "status": "none",
        "primary_contact": contact,
        "notes": [],
        "vehicle": event.vehicle.value,
        "cluster_id": cluster_id,
        "agent_locale": microsoft.agent_locale(partner),
        "partner_center_payload": microsoft.partner_center_payload(
            title=title,
            description=description,
            severity=severity,
            support_topic_id=support_topic_id,
            contact=contact,
        ),
        "submission": submission,
        "submission_error": submission_error,
        "submission_attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    member = {"request_id": values["id"], "issue_id": issue.id}
    own: dict[str, bool] = uow.session.info.get(OWN_KEY, {})
    if cluster_id is None and own.get(key) is False:
        # Read as missing with the batch, under its issue's lock: written with the batch.
        # Its issue's row points at it, so it goes in before the issues' updates.
        own[key] = True
        stage(uow.session, _insert_new_request, values, before_others=True)
        stage(uow.session, _insert_new_member, member)
        _count_request(uow, event.vehicle.value)
        return MicrosoftRequest(**values)  # the row as it will be written
    if cluster_id is None and key not in own:
        # Not read with a batch: tried now, by one compiled statement. When it is new, the
        # row is exactly ``values`` and nothing else is done with it.
        statements = await joined(uow.session)
        if await statements.execute(_insert_request, values):
            stage(uow.session, _insert_new_member, member)
            _count_request(uow, event.vehicle.value)
            return MicrosoftRequest(**values)  # the row as written, not attached to the session
    record = await _request_of(uow, values, event.vehicle.value, cached=cluster_id is not None)
    # The issue may be one of the request's already (its event handled again).
    stage(uow.session, _insert_member, {"request_id": record.id, "issue_id": issue.id})
    absorbed = transaction_scoped(uow.session, ABSORBED, set[str])
    if cluster_id is not None and cluster_id not in absorbed:
        # Once per transaction: what joined since is visible to the next one.
        await _absorb(uow, record, cluster_id, now)
        absorbed.add(cluster_id)
    return record


async def _request_of(
    uow: UnitOfWork, values: dict[str, Any], vehicle: str, *, cached: bool
) -> MicrosoftRequest:
    """The request of ``values["dedupe_key"]``, inserted as ``values`` unless it exists. A
    cluster's (``cached``) is looked up once per transaction: the transaction holds its
    correlation key, and every member's request is the cluster's."""
    known = transaction_scoped(uow.session, CLUSTER_REQUESTS, dict[str, MicrosoftRequest])
    record = known.get(values["dedupe_key"]) if cached else None
    if record is not None:
        return record
    # Neither statement reads what earlier events of the batch left pending, so that is
    # flushed once at commit, together, rather than before each request.
    with uow.session.no_autoflush:
        record, inserted = await insert_or_get(
            uow.session, MicrosoftRequest, values, conflict=["dedupe_key"]
        )
    if inserted:
        _count_request(uow, vehicle)
    if cached:
        known[values["dedupe_key"]] = record
    return record


def _note_kept(record: MicrosoftRequest, kept_id: uuid.UUID, now: datetime) -> None:
    """Note on the cluster's ``record`` a member's request that stays (filed, or being filed):
    once, although one being filed is looked at again by later members' absorbs."""
    text = f"related request already filed: {kept_id}"
    if any(note.get("text") == text for note in record.notes):
        return
    record.notes = [*record.notes, _note(text, now)]


def _note(text: str, now: datetime) -> dict[str, str]:
    """A note this service writes on a Microsoft request record."""
    return {"at": now.isoformat(), "author": "csp-escalation", "text": text}


def _count_request(uow: UnitOfWork, vehicle: str) -> None:
    """Counted when the request is, at commit: a batch that fails together is rolled back
    and handled again one event at a time."""
    uow.after_commit(metrics.MICROSOFT_REQUESTS.labels(vehicle=vehicle).inc)


def _insert_request(dialect: str) -> Insert:
    requests = table_of(MicrosoftRequest)
    return insert_ignoring(dialect, requests, ("dedupe_key",)).values(**bound(*REQUEST_COLUMNS))


def _insert_new_request(dialect: str) -> Insert:
    """A request known not to exist: should it, the unique key fails the transaction."""
    return inserted(table_of(MicrosoftRequest), *REQUEST_COLUMNS)


def _insert_new_member(dialect: str) -> Insert:
    """An issue of a request this transaction inserted."""
    return inserted(table_of(MicrosoftRequestIssue), "request_id", "issue_id")


def _insert_member(dialect: str) -> Insert:
    members = table_of(MicrosoftRequestIssue)
    return insert_ignoring(dialect, members, ("request_id", "issue_id")).values(
        **bound("request_id", "issue_id")
    )


# What a new request's row is given; the other columns keep their defaults.
REQUEST_COLUMNS = (
    "id",
    "partner_id",
    "dedupe_key",
    "title",
    "description",
    "severity",
    "support_topic_id",
    "status",
    "primary_contact",
    "notes",
    "vehicle",
    "cluster_id",
    "agent_locale",
    "partner_center_payload",
    "submission",
    "submission_error",
    "submission_attempts",
    "created_at",
    "updated_at",
)


async def _current_cluster(uow: UnitOfWork, issue: Issue) -> str | None:
    preloaded = transaction_scoped(uow.session, SIGNALS_KEY, _Signals)
    if issue.id in preloaded:
        # Read with the batch, in a cluster or under its key: as it stays until the commit.
        preloaded_signal = preloaded[issue.id]
        return preloaded_signal.cluster_id if preloaded_signal else None
    signal = await uow.session.get(ClusterSignal, issue.id)
    if signal is None:
        return None
    await lock_correlation_key(
        uow.session, signal.partner_id, signal.service_key, signal.region_key
    )
    await uow.session.refresh(signal)
    return signal.cluster_id


async def _absorb(
    uow: UnitOfWork, record: MicrosoftRequest, cluster_id: str, now: datetime
) -> None:
    """Fold into the cluster's request the own requests of the members it has not looked at
    yet: unfiled ones are closed as superseded and their issues re-pointed; ones already filed,
    or being filed by the Partner Center connector right now, stay, and are noted. A member is
    looked at once (one being filed, until it is through), so an absorb costs what joined the
    cluster since the last one, not the whole cluster again."""
    session = uow.session
    # The members not looked at yet, and the request each issue points at: its own, if the
    # issue was escalated before it joined.
    pending = (
        await session.execute(
            select(ClusterSignal.issue_id, Issue.microsoft_request_id)
            .join(Issue, Issue.id == ClusterSignal.issue_id)
            .where(
                ClusterSignal.cluster_id == cluster_id,
                ClusterSignal.cluster_id.is_not(None),  # the partial index's terms, in full
                ClusterSignal.absorbed.is_(False),
            )
            # Another notifier absorbing them now has them: they are its to look at.
            .with_for_update(of=ClusterSignal, skip_locked=True)
        )
    ).all()
    if not pending:
        return
    member_of = {request_id: issue_id for issue_id, request_id in pending if request_id}
    member_of.pop(record.id, None)
    own = await _own_requests_of(session, member_of) if member_of else []
    if own:
        # The batch's pending rows first: the issues' so that re-pointing sees them, the
        # record's so that reading its notes again keeps them. Then its notes as they are, and
        # kept so: another notifier may be noting on it too.
        await uow.flush()
        await session.refresh(record, ["notes"], with_for_update=True)
    settled = {issue_id for issue_id, _ in pending}
    for request in own:
        in_flight = (
            request.submission_claimed_until is not None and request.submission_claimed_until > now
        )
        if request.status == "none" and request.microsoft_id is None and not in_flight:
            await _supersede(uow, request, record, now)
        else:
            _note_kept(record, request.id, now)
        if in_flight:
            settled.discard(member_of[request.id])  # looked at again until it is through
    if own:
        dialect = session.get_bind().dialect.name
        await session.execute(_copy_members(dialect, record.id, [r.id for r in own]))
    await session.execute(
        update(ClusterSignal)
        .where(ClusterSignal.issue_id.in_(settled))
        .values(absorbed=True)
        .execution_options(synchronize_session=False)
    )


async def _own_requests_of(
    session: AsyncSession, request_ids: Collection[uuid.UUID]
) -> list[MicrosoftRequest]:
    """Of ``request_ids``, the issues' own requests (not another cluster's) not merged yet."""
    return list(
        await session.scalars(
            select(MicrosoftRequest)
            .where(
                MicrosoftRequest.id.in_(request_ids),
                MicrosoftRequest.cluster_id.is_(None),
                MicrosoftRequest.superseded_by_id.is_(None),
            )
            # Waits for a connector claim in progress, then sees its lease.
            .with_for_update()
        )
    )


async def _supersede(
    uow: UnitOfWork, request: MicrosoftRequest, record: MicrosoftRequest, now: datetime
) -> None:
    """Close a member's unfiled own ``request`` as merged into the cluster's ``record``, its
    issues re-pointed (the batch's pending rows flushed already, by :func:`_absorb`)."""
    request.superseded_by_id = record.id
    request.status = "closed"
    request.notes = [*request.notes, _note(f"merged into request {record.id}", now)]
    await uow.session.execute(
        update(Issue)
        .where(Issue.microsoft_request_id == request.id)
        .values(microsoft_request_id=record.id)
    )


def _copy_members(dialect: str, request_id: uuid.UUID, sources: list[uuid.UUID]) -> Insert:
    """The issues of the ``sources`` requests become issues of request ``request_id`` too."""
    members = table_of(MicrosoftRequestIssue)
    issues = select(literal(request_id, Uuid), members.c.issue_id).where(
        members.c.request_id.in_(sources)
    )
    ignoring = insert_ignoring(dialect, members, ("request_id", "issue_id"))
    return ignoring.from_select(["request_id", "issue_id"], issues)
