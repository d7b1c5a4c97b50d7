-- 0002 billing: double-entry ledger, holds, consultations and their per-minute charges,
-- Razorpay orders and webhook de-duplication, payouts, refunds audit log.
--
-- Money is BIGINT paise everywhere. Ledger rows are immutable (triggers below); a mistake is
-- corrected by a new transfer. Every account balance is maintained by a statement-level trigger
-- from the entries inserted in the same statement, so a balance can never drift from the sum of
-- its entries, and the balance CHECK makes "no wallet below zero" a database fact.

CREATE TABLE ledger_accounts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind          text NOT NULL CHECK (kind IN ('wallet', 'earnings', 'platform_revenue',
                                                'gateway_clearing', 'promotions',
                                                'payouts_clearing')),
    owner_id      uuid REFERENCES users (id),
    balance_paise bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_accounts_owner_matches_kind
        CHECK ((kind IN ('wallet', 'earnings')) = (owner_id IS NOT NULL)),
    -- gateway clearing and promotions are the ledger's sources: money enters through them, so
    -- they run negative. Everything else (wallets above all) never goes below zero.
    CONSTRAINT ledger_accounts_balance_nonnegative
        CHECK (balance_paise >= 0 OR kind IN ('gateway_clearing', 'promotions'))
);
CREATE UNIQUE INDEX ledger_accounts_owned ON ledger_accounts (kind, owner_id)
    WHERE owner_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_accounts_system ON ledger_accounts (kind) WHERE owner_id IS NULL;

-- System accounts have fixed ids (billing/model.py SYSTEM_ACCOUNTS).
INSERT INTO ledger_accounts (id, kind) VALUES
    ('00000000-0000-0000-0000-000000000001', 'platform_revenue'),
    ('00000000-0000-0000-0000-000000000002', 'gateway_clearing'),
    ('00000000-0000-0000-0000-000000000003', 'promotions'),
    ('00000000-0000-0000-0000-000000000004', 'payouts_clearing');

CREATE TABLE ledger_transfers (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    idempotency_key  text NOT NULL UNIQUE,
    kind             text NOT NULL,
    -- sha256 of the canonical content (billing/model.py Transfer.content_hash): a replayed key
    -- with a different hash is an IDEMPOTENCY_CONFLICT.
    content_hash     text NOT NULL,
    consultation_id  uuid,
    memo             text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_transfers_consultation ON ledger_transfers (consultation_id)
    WHERE consultation_id IS NOT NULL;

CREATE TABLE ledger_entries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id  uuid NOT NULL REFERENCES ledger_transfers (id),
    account_id   uuid NOT NULL REFERENCES ledger_accounts (id),
    amount_paise bigint NOT NULL CHECK (amount_paise <> 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);
CREATE INDEX ledger_entries_transfer ON ledger_entries (transfer_id);

CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = '55000';
END $$;
CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();

-- All entries of one transfer are inserted by one statement; this statement-level trigger
-- rejects any transfer whose entries do not sum to zero and applies the entries to the account
-- balances (same statement, same transaction). Callers lock the accounts first
-- (SELECT ... ORDER BY id FOR UPDATE) so the UPDATE below never deadlocks.
CREATE FUNCTION ledger_entries_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT transfer_id INTO bad FROM new_entries
        GROUP BY transfer_id HAVING sum(amount_paise) <> 0 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transfer % is unbalanced', bad USING ERRCODE = '23514';
    END IF;
    UPDATE ledger_accounts a SET balance_paise = a.balance_paise + d.delta
      FROM (SELECT account_id, sum(amount_paise) AS delta FROM new_entries
             GROUP BY account_id) d
     WHERE a.id = d.account_id AND d.delta <> 0;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_apply();

-- Two-phase reservations. available = balance - sum(open holds). Resolved exactly once.
CREATE TABLE ledger_holds (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id    uuid NOT NULL REFERENCES ledger_accounts (id),
    amount_paise  bigint NOT NULL CHECK (amount_paise > 0),
    reference     text NOT NULL UNIQUE,
    state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'posted', 'voided')),
    posted_paise  bigint NOT NULL DEFAULT 0 CHECK (posted_paise >= 0 AND posted_paise <= amount_paise),
    transfer_id   uuid REFERENCES ledger_transfers (id),
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    CONSTRAINT ledger_holds_resolution CHECK ((state = 'open') = (resolved_at IS NULL))
);
CREATE INDEX ledger_holds_open_account ON ledger_holds (account_id) WHERE state = 'open';
CREATE INDEX ledger_holds_open_expiry ON ledger_holds (expires_at) WHERE state = 'open';

CREATE FUNCTION ledger_holds_resolve_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state <> 'open' THEN
        RAISE EXCEPTION 'hold % is already %', OLD.id, OLD.state USING ERRCODE = '55000';
    END IF;
    IF NEW.account_id <> OLD.account_id OR NEW.amount_paise <> OLD.amount_paise THEN
        RAISE EXCEPTION 'hold % amount/account are immutable', OLD.id USING ERRCODE = '55000';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_holds_resolve_once BEFORE UPDATE ON ledger_holds
    FOR EACH ROW EXECUTE FUNCTION ledger_holds_resolve_once();
CREATE TRIGGER ledger_holds_no_delete BEFORE DELETE ON ledger_holds
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();

CREATE TABLE consultations (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    caller_id              uuid NOT NULL REFERENCES users (id),
    consultant_id          uuid NOT NULL REFERENCES users (id),
    mode                   text NOT NULL CHECK (mode IN ('chat', 'voice', 'video')),
    state                  text NOT NULL DEFAULT 'requested'
                           CHECK (state IN ('requested', 'active', 'ended')),
    end_reason             text CHECK (end_reason IN ('completed', 'cancelled', 'rejected',
                                                      'timeout', 'insufficient_balance',
                                                      'disconnected', 'admin')),
    rate_paise             bigint NOT NULL CHECK (rate_paise > 0),
    commission_percent     smallint NOT NULL CHECK (commission_percent BETWEEN 0 AND 100),
    minute_seconds         integer NOT NULL CHECK (minute_seconds > 0),
    free_minutes           integer NOT NULL DEFAULT 0 CHECK (free_minutes >= 0),
    hold_id                uuid REFERENCES ledger_holds (id),
    caller_account_id      uuid NOT NULL REFERENCES ledger_accounts (id),
    consultant_account_id  uuid REFERENCES ledger_accounts (id),
    requested_at           timestamptz NOT NULL DEFAULT now(),
    started_at             timestamptz,
    ended_at               timestamptz,
    ended_by               uuid,
    -- start of the next unpaid minute; the tick's index.
    next_charge_at         timestamptz,
    minutes_charged        integer NOT NULL DEFAULT 0 CHECK (minutes_charged >= 0),
    amount_charged_paise   bigint NOT NULL DEFAULT 0 CHECK (amount_charged_paise >= 0),
    promo_paise            bigint NOT NULL DEFAULT 0 CHECK (promo_paise >= 0),
    consultant_share_paise bigint NOT NULL DEFAULT 0 CHECK (consultant_share_paise >= 0),
    refunded_paise         bigint NOT NULL DEFAULT 0 CHECK (refunded_paise >= 0),
    CHECK (caller_id <> consultant_id),
    CHECK ((state = 'ended') = (end_reason IS NOT NULL AND ended_at IS NOT NULL)),
    CHECK (state = 'requested' OR state = 'ended' OR started_at IS NOT NULL),
    CHECK (refunded_paise <= amount_charged_paise)
);
CREATE UNIQUE INDEX consultations_one_live_per_caller ON consultations (caller_id)
    WHERE state IN ('requested', 'active');
CREATE UNIQUE INDEX consultations_one_active_per_consultant ON consultations (consultant_id)
    WHERE state = 'active';
CREATE INDEX consultations_due ON consultations (next_charge_at) WHERE state = 'active';
CREATE INDEX consultations_requested ON consultations (requested_at) WHERE state = 'requested';
CREATE INDEX consultations_consultant_live ON consultations (consultant_id)
    WHERE state IN ('requested', 'active');
CREATE INDEX consultations_caller ON consultations (caller_id, requested_at DESC);

-- One row per charged (consultation, minute): the UNIQUE key that makes every tick idempotent.
CREATE TABLE consultation_charges (
    consultation_id        uuid NOT NULL REFERENCES consultations (id),
    minute                 integer NOT NULL CHECK (minute >= 1),
    amount_paise           bigint NOT NULL CHECK (amount_paise > 0),
    consultant_share_paise bigint NOT NULL CHECK (consultant_share_paise >= 0),
    source                 text NOT NULL CHECK (source IN ('wallet', 'promotion')),
    transfer_id            uuid NOT NULL REFERENCES ledger_transfers (id),
    -- set when the minute turned out to start after the session's (back-dated) end.
    reversal_transfer_id   uuid REFERENCES ledger_transfers (id),
    charged_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consultation_id, minute)
);

-- Razorpay (or dev simulator) orders; credited at most once.
CREATE TABLE payment_orders (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id),
    gateway          text NOT NULL CHECK (gateway IN ('razorpay', 'simulator')),
    gateway_order_id text NOT NULL UNIQUE,
    amount_paise     bigint NOT NULL CHECK (amount_paise BETWEEN 100 AND 10000000),
    currency         text NOT NULL DEFAULT 'INR',
    status           text NOT NULL DEFAULT 'created' CHECK (status IN ('created', 'paid', 'failed')),
    payment_id       text UNIQUE,
    transfer_id      uuid REFERENCES ledger_transfers (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    paid_at          timestamptz,
    CHECK ((status = 'paid') = (transfer_id IS NOT NULL))
);
CREATE INDEX payment_orders_user ON payment_orders (user_id, created_at DESC);

CREATE TABLE payment_webhook_events (
    event_id    text PRIMARY KEY,
    event       text NOT NULL,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payment_anomalies (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    gateway_order_id text,
    payment_id       text,
    expected_paise   bigint,
    received_paise   bigint,
    details          jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payouts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consultant_id  uuid NOT NULL REFERENCES users (id),
    amount_paise   bigint NOT NULL CHECK (amount_paise > 0),
    state          text NOT NULL DEFAULT 'requested'
                   CHECK (state IN ('requested', 'approved', 'rejected', 'posted', 'voided')),
    hold_id        uuid NOT NULL REFERENCES ledger_holds (id),
    transfer_id    uuid REFERENCES ledger_transfers (id),
    bank_reference text,
    failure_reason text,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz,
    decided_by     uuid,
    settled_at     timestamptz,
    CHECK ((state = 'posted') = (transfer_id IS NOT NULL AND bank_reference IS NOT NULL))
);
CREATE UNIQUE INDEX payouts_one_pending ON payouts (consultant_id)
    WHERE state IN ('requested', 'approved');
CREATE INDEX payouts_approved ON payouts (decided_at) WHERE state = 'approved';

CREATE TABLE billing_audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id     uuid,
    action       text NOT NULL,
    subject_type text NOT NULL,
    subject_id   text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_audit_log_subject ON billing_audit_log (subject_type, subject_id);
