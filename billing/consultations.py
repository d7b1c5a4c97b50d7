"""Consultations and their money transitions (the contract in TEAM.md; signalling drives it).

The states and values are in billing.lifecycle. Request places a hold of MIN_START_MINUTES x
rate; accept charges minute 1 from it (posting the hold in part, releasing the rest); the tick
charges minute k once k-1 minutes have run; end settles (charges owed minutes up to the end
time, reverses any minute that began after a back-dated end, or every minute of a consultation
that never carried service, releases holds) and returns a `Statement`. Ending never fails for
money reasons (billing.settlement). Events go on the bus AFTER commit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog
from opentelemetry.trace import NoOpTracer, Tracer

from billing import ledger
from billing.charging import ChargeResult, Due, charge
from billing.config import BillingSettings
from billing.errors import (
    AlreadyLive,
    BirthProfileNotFound,
    ConsultantUnavailable,
    InsufficientBalance,
    InvalidTransition,
    NotFound,
)
from billing.events import TOPIC, BalanceLow, ConsultStateChanged, MinuteCharged
from billing.invariants import minutes_due
from billing.lifecycle import (
    Consultation,
    EndReason,
    InvalidRequest,
    Mode,
    State,
    Statement,
    TickReport,
    Unserved,
    check_transition,
)
from billing.model import AccountKind
from billing.ports import Clock, HasPool, Publisher
from billing.settlement import mark_unserved, reverse_minutes_after, unserved_reason
from core.session_log import SessionEvent, record_event, write_events
from core.tracing import CONSULTATION_ID, consultation_step

log = structlog.get_logger(__name__)

_SELECT = "SELECT * FROM consultations"
_CAUSES = {EndReason.REJECTED: "rejected", EndReason.TIMEOUT: "timed_out"}


async def _link_birth_profile(
    conn: asyncpg.Connection, cid: uuid.UUID, profile_id: uuid.UUID, caller_id: uuid.UUID
) -> None:
    """In the request's transaction, so the astrologer can read the chart from the first event
    on; only the caller's own profile links (issue 15)."""
    linked = await conn.execute(
        "INSERT INTO consultation_birth_profiles (consultation_id, profile_id)"
        " SELECT $1, id FROM birth_profiles WHERE id = $2 AND owner_id = $3",
        cid,
        profile_id,
        caller_id,
    )
    if linked == "INSERT 0 0":
        raise BirthProfileNotFound("birth profile not found")


async def _check_both_free(
    conn: asyncpg.Connection, caller_id: uuid.UUID, consultant_id: uuid.UUID
) -> None:
    """In the request's transaction, with the caller's wallet locked: ALREADY_LIVE when the
    caller has a requested or active consultation, CONSULTANT_UNAVAILABLE when the consultant
    has one. Requests for one consultant are serialised by an advisory lock until commit (the
    signalling waitlist takes over on CONSULTANT_UNAVAILABLE)."""
    live = await conn.fetchval(
        "SELECT id FROM consultations WHERE caller_id = $1 AND state IN ('requested', 'active')",
        caller_id,
    )
    if live is not None:
        raise AlreadyLive("caller already has a live consultation", consultation_id=str(live))
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('consultant:' || $1::uuid::text, 0))",
        consultant_id,
    )
    taken = await conn.fetchval(
        "SELECT state FROM consultations WHERE consultant_id = $1 "
        "AND state IN ('requested', 'active') LIMIT 1",
        consultant_id,
    )
    if taken is not None:
        raise ConsultantUnavailable("consultant is busy", reason="busy", consultant_state=taken)


class ConsultationService:
    """Consultation lifecycle with its money (see module docstring); each transition, charged
    minute and refund is a span of ``tracer`` (core/tracing.py)."""

    def __init__(
        self,
        db: HasPool,
        bus: Publisher,
        clock: Clock,
        settings: BillingSettings | Any,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        self.tracer: Tracer = tracer or NoOpTracer()
        self._db = db
        self._bus = bus
        self._clock = clock
        billing = getattr(settings, "billing", settings)
        if not isinstance(billing, BillingSettings):
            raise TypeError("settings must be BillingSettings or have a .billing attribute")
        self._settings: BillingSettings = billing

    @property
    def settings(self) -> BillingSettings:
        return self._settings

    # ---- reads ---------------------------------------------------------------------------

    async def get(self, consultation_id: uuid.UUID) -> Consultation:
        row = await self._db.pool.fetchrow(f"{_SELECT} WHERE id = $1", consultation_id)
        if row is None:
            raise NotFound("consultation not found", consultation_id=str(consultation_id))
        return Consultation.from_row(row)

    async def live_for_consultant(self, consultant_id: uuid.UUID) -> Consultation | None:
        row = await self._db.pool.fetchrow(
            f"{_SELECT} WHERE consultant_id = $1 AND state IN ('requested', 'active') "
            "ORDER BY (state = 'active') DESC, requested_at LIMIT 1",
            consultant_id,
        )
        return Consultation.from_row(row) if row else None

    async def live_for_caller(self, caller_id: uuid.UUID) -> Consultation | None:
        row = await self._db.pool.fetchrow(
            f"{_SELECT} WHERE caller_id = $1 AND state IN ('requested', 'active')", caller_id
        )
        return Consultation.from_row(row) if row else None

    async def statement(self, consultation_id: uuid.UUID) -> Statement:
        return Statement.of(await self.get(consultation_id))

    async def _start_needs(
        self, conn: asyncpg.Connection, caller_id: uuid.UUID, rate: int
    ) -> tuple[int, int]:
        """(paise a start holds, free minutes): MIN_START_MINUTES of the rate, less the free
        first minutes of a caller who never had a consultation start."""
        first = not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM consultations WHERE caller_id = $1 "
            "AND started_at IS NOT NULL)",
            caller_id,
        )
        free = self._settings.free_first_minutes if first else 0
        return max(0, self._settings.min_start_minutes - free) * rate, free

    async def start_shortfall(
        self, caller_id: uuid.UUID, consultant_id: uuid.UUID, mode: Mode | str
    ) -> int:
        """Paise the caller lacks to start this consultation now (0: they could), by the rule
        :meth:`request` applies; CONSULTANT_UNAVAILABLE when the astrologer has no such mode."""
        async with self._db.pool.acquire() as conn, conn.transaction():
            rate, _ = await consultant_terms(conn, consultant_id, Mode(mode), self._settings)
            wallet = await ledger.ensure_account(conn, AccountKind.WALLET, caller_id)
            acct = (await ledger.lock_accounts(conn, [wallet]))[wallet]
            needed, _ = await self._start_needs(conn, caller_id, rate)
            return max(0, needed - max(acct.available, 0))

    @consultation_step("consultation.media_started")
    async def media_started(self, consultation_id: uuid.UUID) -> bool:
        """Record that media first flowed in an active call (signalling calls this when the SFU
        first forwards a party's media); True only the first time. A voice or video
        consultation that ends without it is refunded automatically."""
        done = await self._db.pool.fetchval(
            "UPDATE consultations SET media_started_at = $2 WHERE id = $1 "
            "AND media_started_at IS NULL AND state = 'active' RETURNING id",
            consultation_id,
            self._clock.now(),
        )
        if done is not None:
            log.info("first_media", consultation_id=str(consultation_id))
        return done is not None

    # ---- transitions -------------------------------------------------------------------------

    @consultation_step("consultation.request")
    async def request(
        self,
        caller_id: uuid.UUID,
        consultant_id: uuid.UUID,
        mode: Mode | str,
        *,
        birth_profile_id: uuid.UUID | None = None,
    ) -> Consultation:
        """Create a requested consultation, holding MIN_START_MINUTES x rate of the wallet.

        CONSULTANT_UNAVAILABLE (409) when the consultant has no rate for the mode or already has
        a requested or active consultation; ALREADY_LIVE when the caller has one;
        INSUFFICIENT_BALANCE (402, details.needed_paise) below the minimum."""
        mode = Mode(mode)
        if caller_id == consultant_id:
            raise InvalidRequest("cannot consult yourself")
        now = self._clock.now()
        s = self._settings
        async with self._db.pool.acquire() as conn, conn.transaction():
            rate, commission = await consultant_terms(conn, consultant_id, mode, s)
            wallet = await ledger.ensure_account(conn, AccountKind.WALLET, caller_id)
            acct = (await ledger.lock_accounts(conn, [wallet]))[wallet]
            await _check_both_free(conn, caller_id, consultant_id)
            needed, free = await self._start_needs(conn, caller_id, rate)
            if acct.available < needed:
                raise InsufficientBalance(
                    "wallet balance is below the minimum to start",
                    needed_paise=needed,
                    available_paise=max(acct.available, 0),
                    shortfall_paise=needed - max(acct.available, 0),
                )
            cid = uuid.uuid4()
            hold_id = None
            if needed > 0:
                expires = now + timedelta(seconds=s.request_timeout_seconds + 300)
                hold_id = await ledger.place_hold(conn, wallet, needed, f"consult:{cid}", expires)
            row = await conn.fetchrow(
                "INSERT INTO consultations (id, caller_id, consultant_id, mode, rate_paise, "
                "commission_percent, minute_seconds, free_minutes, hold_id, caller_account_id, "
                "requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *",
                cid,
                caller_id,
                consultant_id,
                mode.value,
                rate,
                commission,
                s.minute_seconds,
                free,
                hold_id,
                wallet,
                now,
            )
            await record_event(
                conn, cid, "requested", actor_id=caller_id, at=now,
                data={"mode": mode.value, "consultant_id": str(consultant_id), "rate_paise": rate,
                      "free_minutes": free, "hold_paise": needed},
            )
            if birth_profile_id is not None:
                await _link_birth_profile(conn, cid, birth_profile_id, caller_id)
        c = Consultation.from_row(row)
        log.info("consultation_requested", consultation_id=str(c.id), rate_paise=c.rate_paise)
        await self._publish_state(c)
        return c

    @consultation_step("consultation.accept")
    async def accept(self, consultation_id: uuid.UUID, consultant_id: uuid.UUID) -> Consultation:
        """requested -> active; charges minute 1 (posting the request hold in part)."""
        now = self._clock.now()
        async with self._db.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, consultation_id)
            if row["consultant_id"] != consultant_id:
                raise NotFound("consultation not found", consultation_id=str(consultation_id))
            check_transition(State(row["state"]), State.ACTIVE)
            busy = await conn.fetchval(
                "SELECT id FROM consultations WHERE consultant_id = $1 AND state = 'active'",
                consultant_id,
            )
            if busy is not None:
                raise ConsultantUnavailable("consultant is in another consultation", reason="busy")
            earn = await ledger.ensure_account(conn, AccountKind.EARNINGS, consultant_id)
            await conn.execute(
                "UPDATE consultations SET state = 'active', started_at = $2, next_charge_at = $2, "
                "consultant_account_id = $3 WHERE id = $1",
                consultation_id,
                now,
                earn,
            )
            await record_event(conn, consultation_id, "accepted", actor_id=consultant_id, at=now)
            await self._lock_money(conn, [row])
            results = await charge(conn, [Due(consultation_id, 0, row["free_minutes"], 1)], now)
            hold_id = row["hold_id"]
            if hold_id is not None:
                paid = await conn.fetchrow(
                    "SELECT transfer_id, amount_paise FROM consultation_charges "
                    "WHERE consultation_id = $1 AND minute = 1 AND source = 'wallet'",
                    consultation_id,
                )
                if paid is not None:
                    await ledger.mark_hold_posted(
                        conn, hold_id, paid["amount_paise"], paid["transfer_id"], now
                    )
                else:
                    await ledger.void_hold(conn, hold_id, now)
            c = Consultation.from_row(await self._lock(conn, consultation_id))
        await self._publish_state(c)
        await self._publish_charges(results)
        return c

    @consultation_step("consultation.reject")
    async def reject(self, consultation_id: uuid.UUID, consultant_id: uuid.UUID) -> Consultation:
        """requested -> ended(rejected); releases the hold."""
        now = self._clock.now()
        async with self._db.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, consultation_id)
            if row["consultant_id"] != consultant_id:
                raise NotFound("consultation not found", consultation_id=str(consultation_id))
            if State(row["state"]) is not State.REQUESTED:
                raise InvalidTransition(row["state"], "rejected")
            c = await self._finish(conn, row, EndReason.REJECTED, now, consultant_id)
        await self._publish_state(c)
        return c

    @consultation_step("consultation.end")
    async def end(
        self,
        consultation_id: uuid.UUID,
        reason: EndReason | str,
        *,
        actor_id: uuid.UUID | None = None,
        ended_at: datetime | None = None,
    ) -> Statement:
        """End and settle; idempotent (an ended consultation returns its statement).

        `ended_at` may lie in the past (a party dropped then): minutes are owed up to it and no
        further; a minute the tick charged after it is reversed. A consultation that carried no
        service (`unserved_reason`) owes nothing: every charged minute is reversed. Reversals
        take the consultant's share from available earnings, the rest on their receivable
        (billing.settlement), so ending never fails for money reasons.
        """
        reason = EndReason(reason)
        now = self._clock.now()
        end_at = min(ended_at, now) if ended_at is not None else now
        results: list[ChargeResult] = []
        async with self._db.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, consultation_id)
            state = State(row["state"])
            if state is State.ENDED:
                return Statement.of(Consultation.from_row(row))
            if state is State.REQUESTED:
                if reason is EndReason.COMPLETED:
                    reason = EndReason.CANCELLED
                c = await self._finish(
                    conn, row, reason, max(end_at, row["requested_at"]), actor_id
                )
            else:
                end_at = max(end_at, row["started_at"])
                unserved = await unserved_reason(conn, row)
                owed = (
                    0 if unserved else minutes_due(row["started_at"], end_at, row["minute_seconds"])
                )
                if owed > row["minutes_charged"]:
                    await self._lock_money(conn, [row])
                    due = Due(consultation_id, row["minutes_charged"], row["free_minutes"], owed)
                    results = await charge(conn, [due], now)
                elif owed < row["minutes_charged"]:
                    await self._refund(conn, row, owed, unserved, now)
                row = await self._lock(conn, consultation_id)
                if State(row["state"]) is State.ENDED:  # could not pay an owed minute
                    await self._release_hold(conn, row, now)
                    c = Consultation.from_row(row)
                else:
                    c = await self._finish(conn, row, reason, end_at, actor_id)
        await self._publish_charges(results)
        await self._publish_state(c)
        return Statement.of(c)

    @consultation_step("billing.tick")
    async def tick(
        self, now: datetime | None = None, *, batch: int | None = None, workers: int | None = None
    ) -> TickReport:
        """Charge every due minute of every active consultation; end unfunded and timed-out ones.

        Batched and set-based: each worker repeatedly locks a batch of due consultations with
        FOR UPDATE SKIP LOCKED (so workers, and concurrent ticks in other processes, split the
        work), locks their wallets and earnings, and charges the whole batch with ONE statement
        (billing.charging). Workers meet only at the system accounts' final update.
        """
        now = now or self._clock.now()
        s = self._settings
        report = TickReport()
        started = time.perf_counter()
        report.timed_out = await self._expire_requests(now)
        async with self._db.pool.acquire() as conn, conn.transaction():
            report.holds_voided = len(await ledger.void_expired_holds(conn, now))
        await asyncio.gather(
            *(
                self._tick_worker(now, batch or s.tick_batch, report)
                for _ in range(max(1, workers or s.tick_workers))
            )
        )
        report.seconds = time.perf_counter() - started
        return report

    async def _tick_worker(self, now: datetime, batch: int, report: TickReport) -> None:
        while True:
            async with self._db.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, started_at, minute_seconds, minutes_charged, free_minutes, "
                    "caller_account_id, consultant_account_id FROM consultations "
                    "WHERE state = 'active' AND next_charge_at <= $1 "
                    "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                    now,
                    batch,
                )
                if not rows:
                    return
                await self._lock_money(conn, rows)
                dues = [
                    Due(
                        r["id"],
                        r["minutes_charged"],
                        r["free_minutes"],
                        minutes_due(r["started_at"], now, r["minute_seconds"]),
                    )
                    for r in rows
                ]
                results = await charge(conn, dues, now)
                ended = [r for r in results if r.ended]
                for r in ended:
                    if r.hold_id is not None:
                        await ledger.void_hold(conn, r.hold_id, now)
                ended_rows = (
                    await conn.fetch(
                        f"{_SELECT} WHERE id = ANY($1::uuid[])",
                        [r.consultation_id for r in ended],
                    )
                    if ended
                    else []
                )
            for r in results:
                if r.charged_now:
                    report.consultations_charged += 1
                    report.charged_minutes += r.charged_now
                    report.charged_paise += r.wallet_now_paise
            report.ended_insufficient += [r.consultation_id for r in ended]
            await self._publish_charges(results)
            for er in ended_rows:
                await self._publish_state(await self._refund_if_unserved(er["id"]))
            if not any(r.charged_now or r.ended for r in results):
                return  # nothing moved (cannot happen with consistent rows): never spin

    # ---- internals ---------------------------------------------------------------------------

    async def _refund_if_unserved(self, consultation_id: uuid.UUID) -> Consultation:
        """A consultation the tick ended for lack of balance is refunded as `end` would, if it
        never carried service: in its own transaction after the tick's (only ended ones pay
        for it, and the receivable is locked with the other accounts, in order)."""
        async with self._db.pool.acquire() as conn, conn.transaction():
            row = await self._lock(conn, consultation_id)
            unserved = None if row["unserved"] else await unserved_reason(conn, row)
            if unserved is not None and row["minutes_charged"]:
                await self._refund(conn, row, 0, unserved, self._clock.now())
                row = await self._lock(conn, consultation_id)
        return Consultation.from_row(row)

    async def _refund(
        self, conn: asyncpg.Connection, row: asyncpg.Record, kept: int,
        unserved: Unserved | None, now: datetime,
    ) -> None:
        """Reverse the minutes charged beyond ``kept`` (all, marked, of an unserved one)."""
        attributes: dict[str, str | int] = {CONSULTATION_ID: str(row["id"]), "refund.kept": kept}
        with self.tracer.start_as_current_span("consultation.refund", attributes=attributes):
            returned = await reverse_minutes_after(conn, row, kept, unserved, now)
            if unserved:
                await mark_unserved(conn, row["id"], unserved, returned)

    async def _lock(self, conn: asyncpg.Connection, consultation_id: uuid.UUID) -> asyncpg.Record:
        row = await conn.fetchrow(f"{_SELECT} WHERE id = $1 FOR UPDATE", consultation_id)
        if row is None:
            raise NotFound("consultation not found", consultation_id=str(consultation_id))
        return row

    async def _lock_money(self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> None:
        """Lock the wallets and earnings the charge statement touches, in id order (one
        statement); the system accounts are locked by the entries trigger (billing.ledger)."""
        ids: set[uuid.UUID] = set()
        unread: list[uuid.UUID] = []  # accept passes the row read before it set the earnings
        for r in rows:
            ids.add(r["caller_account_id"])
            if r["consultant_account_id"] is not None:
                ids.add(r["consultant_account_id"])
            else:
                unread.append(r["id"])
        if unread:
            earn = await conn.fetch(
                "SELECT consultant_account_id FROM consultations WHERE id = ANY($1::uuid[])",
                unread,
            )
            ids.update(e["consultant_account_id"] for e in earn if e["consultant_account_id"])
        await conn.execute(
            "SELECT 1 FROM ledger_accounts WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
            sorted(ids),
        )

    async def _finish(
        self,
        conn: asyncpg.Connection,
        row: asyncpg.Record,
        reason: EndReason,
        end_at: datetime,
        actor_id: uuid.UUID | None,
    ) -> Consultation:
        check_transition(State(row["state"]), State.ENDED)
        updated = await conn.fetchrow(
            "UPDATE consultations SET state = 'ended', end_reason = $2, ended_at = $3, "
            "ended_by = $4, next_charge_at = NULL WHERE id = $1 RETURNING *",
            row["id"],
            reason.value,
            end_at,
            actor_id,
        )
        now = self._clock.now()
        if reason in _CAUSES:  # the session log names the cause before the end it brings
            await record_event(conn, row["id"], _CAUSES[reason], actor_id=actor_id, at=now)
        await record_event(
            conn, row["id"], "ended", actor_id=actor_id, at=now,
            data={"reason": reason.value, "ended_at": end_at.isoformat()},
        )
        await self._release_hold(conn, updated, now)
        return Consultation.from_row(updated)

    async def _release_hold(
        self, conn: asyncpg.Connection, row: asyncpg.Record, now: datetime
    ) -> None:
        if row["hold_id"] is not None:
            await ledger.void_hold(conn, row["hold_id"], now)

    async def _expire_requests(self, now: datetime) -> list[uuid.UUID]:
        cutoff = now - timedelta(seconds=self._settings.request_timeout_seconds)
        async with self._db.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE consultations SET state = 'ended', end_reason = 'timeout', ended_at = $1 "
                "WHERE state = 'requested' AND requested_at <= $2 RETURNING *",
                now,
                cutoff,
            )
            for r in rows:
                await self._release_hold(conn, r, now)
            await write_events(conn, [
                SessionEvent(r["id"], kind, now, data=data)
                for r in rows
                for kind, data in (("timed_out", {}), ("ended", {"reason": "timeout",
                                                                  "ended_at": now.isoformat()}))
            ])
        for r in rows:
            await self._publish_state(Consultation.from_row(r))
        return [r["id"] for r in rows]

    async def _publish_state(self, c: Consultation) -> None:
        await self._publish(ConsultStateChanged(c.to_json()).encode())

    async def _publish_charges(self, results: Sequence[ChargeResult]) -> None:
        for r in results:
            if not r.charged_now:
                continue
            minute: dict[str, str | int] = {CONSULTATION_ID: str(r.consultation_id),
                                            "billing.minute": r.minutes_charged}
            with self.tracer.start_as_current_span(
                "consultation.minute_charged", attributes=minute
            ):
                await self._publish(
                    MinuteCharged(
                        r.consultation_id, r.caller_id, r.consultant_id, r.minutes_charged,
                        r.amount_charged_paise, r.balance_after_paise,
                    ).encode()
                )
            if not r.ended and r.minutes_left <= 2:
                await self._publish(
                    BalanceLow(
                        r.consultation_id, r.caller_id, r.consultant_id, r.minutes_left
                    ).encode()
                )

    async def _publish(self, event: dict[str, Any]) -> None:
        try:
            await self._bus.publish(TOPIC, event)
        except Exception:  # the money is committed; a lost event must not undo it
            log.exception("billing_event_publish_failed")


async def consultant_terms(
    conn: asyncpg.Connection, consultant_id: uuid.UUID, mode: Mode, settings: BillingSettings
) -> tuple[int, int]:
    """(rate in paise for the mode, commission percent) of a consultant."""
    row = await conn.fetchrow(
        f"SELECT p.rate_{mode.value}_paise AS rate, p.commission_percent AS commission "
        "FROM consultant_profiles p WHERE p.user_id = $1",
        consultant_id,
    )
    if row is None:
        raise NotFound("consultant not found", consultant_id=str(consultant_id))
    if not row["rate"] or row["rate"] <= 0:
        raise ConsultantUnavailable(f"consultant does not offer {mode.value}", reason="mode")
    commission = row["commission"]
    return row["rate"], settings.commission_percent if commission is None else commission
