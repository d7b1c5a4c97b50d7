CREATE FUNCTION public.consultation_charges_check() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_charges n LEFT JOIN ledger_transfers t ON t.id = n.transfer_id
                WHERE t.id IS NULL) THEN
        RAISE EXCEPTION 'consultation charge refers to a missing transfer' USING ERRCODE = '23503';
    END IF;
    IF EXISTS (SELECT 1 FROM new_charges n LEFT JOIN consultations k ON k.id = n.consultation_id
                WHERE k.id IS NULL) THEN
        RAISE EXCEPTION 'consultation charge refers to a missing consultation'
            USING ERRCODE = '23503';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION public.earnings_cover_holds() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    acct uuid;
    short bigint;
BEGIN
    IF TG_TABLE_NAME = 'ledger_holds' THEN
        acct := NEW.account_id;
    ELSE
        acct := NEW.id;
    END IF;
    SELECT COALESCE((SELECT sum(h.amount_paise) FROM ledger_holds h
                      WHERE h.account_id = a.id AND h.state = 'open'), 0) - a.balance_paise
      INTO short
      FROM ledger_accounts a WHERE a.id = acct AND a.kind = 'earnings';
    IF short > 0 THEN
        RAISE EXCEPTION 'earnings % are % paise below their open holds', acct, short
            USING ERRCODE = '23514';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION public.ledger_entries_apply() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    bad uuid;
    wanted integer;
    applied integer;
BEGIN
    SELECT transfer_id INTO bad FROM new_entries
        GROUP BY transfer_id HAVING sum(amount_paise) <> 0 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transfer % is unbalanced', bad USING ERRCODE = '23514';
    END IF;
    SELECT n.transfer_id INTO bad FROM (SELECT DISTINCT transfer_id FROM new_entries) n
        LEFT JOIN ledger_transfers t ON t.id = n.transfer_id WHERE t.id IS NULL LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'ledger entry refers to missing transfer %', bad USING ERRCODE = '23503';
    END IF;
    SELECT count(*) INTO wanted FROM (SELECT DISTINCT account_id FROM new_entries) d;
    -- Lock in id order first (billing/ledger.py rule 2): owned accounts are already held by
    -- the caller, system accounts are taken here, so concurrent writers never deadlock.
    PERFORM 1 FROM ledger_accounts
      WHERE id IN (SELECT DISTINCT account_id FROM new_entries) ORDER BY id FOR UPDATE;
    UPDATE ledger_accounts a SET balance_paise = a.balance_paise + d.delta
      FROM (SELECT account_id, sum(amount_paise) AS delta FROM new_entries
             GROUP BY account_id) d
     WHERE a.id = d.account_id;
    GET DIAGNOSTICS applied = ROW_COUNT;
    IF applied <> wanted THEN
        RAISE EXCEPTION 'ledger entry refers to a missing account' USING ERRCODE = '23503';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION public.ledger_holds_resolve_once() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF OLD.state <> 'open' THEN
        RAISE EXCEPTION 'hold % is already %', OLD.id, OLD.state USING ERRCODE = '55000';
    END IF;
    IF NEW.account_id <> OLD.account_id OR NEW.amount_paise <> OLD.amount_paise THEN
        RAISE EXCEPTION 'hold % amount/account are immutable', OLD.id USING ERRCODE = '55000';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION public.ledger_immutable() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = '55000';
END $$;

CREATE FUNCTION public.users_revoke_on_disable() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.disabled_at IS NOT NULL AND OLD.disabled_at IS NULL
       AND NEW.token_version = OLD.token_version THEN
        NEW.token_version := OLD.token_version + 1;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    actor_id uuid,
    action text NOT NULL,
    subject_type text NOT NULL,
    subject_id text NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE public.audit_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.billing_audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.birth_profiles (
    id uuid NOT NULL,
    owner_id uuid NOT NULL,
    sealed bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.chat_messages (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    consultation_id uuid NOT NULL,
    seq bigint NOT NULL,
    sender_id uuid NOT NULL,
    client_id text NOT NULL,
    kind text NOT NULL,
    body text,
    upload_id uuid,
    masked boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chat_messages_check CHECK (((kind = 'text'::text) = ((body IS NOT NULL) AND (upload_id IS NULL)))),
    CONSTRAINT chat_messages_check1 CHECK (((kind = 'image'::text) = ((upload_id IS NOT NULL) AND (body IS NULL)))),
    CONSTRAINT chat_messages_client_id_check CHECK (((length(client_id) >= 1) AND (length(client_id) <= 64))),
    CONSTRAINT chat_messages_kind_check CHECK ((kind = ANY (ARRAY['text'::text, 'image'::text]))),
    CONSTRAINT chat_messages_seq_check CHECK ((seq > 0))
);

CREATE TABLE public.chat_reads (
    consultation_id uuid NOT NULL,
    user_id uuid NOT NULL,
    last_read_seq bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chat_reads_last_read_seq_check CHECK ((last_read_seq >= 0))
);

CREATE TABLE public.chat_rooms (
    consultation_id uuid NOT NULL,
    last_seq bigint NOT NULL,
    CONSTRAINT chat_rooms_last_seq_check CHECK ((last_seq >= 0))
);

CREATE TABLE public.chat_uploads (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    consultation_id uuid NOT NULL,
    uploader_id uuid NOT NULL,
    content_type text NOT NULL,
    size_bytes integer NOT NULL,
    sha256 text NOT NULL,
    data bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chat_uploads_size_bytes_check CHECK ((size_bytes > 0))
);

CREATE TABLE public.consult_waitlist (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    consultant_id uuid NOT NULL,
    caller_id uuid NOT NULL,
    mode text NOT NULL,
    state text DEFAULT 'queued'::text NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    offered_at timestamp with time zone,
    closed_at timestamp with time zone,
    CONSTRAINT consult_waitlist_check CHECK ((caller_id <> consultant_id)),
    CONSTRAINT consult_waitlist_mode_check CHECK ((mode = ANY (ARRAY['chat'::text, 'voice'::text, 'video'::text]))),
    CONSTRAINT consult_waitlist_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'offered'::text, 'taken'::text, 'left'::text, 'expired'::text, 'skipped'::text])))
);

CREATE TABLE public.consultant_photos (
    user_id uuid NOT NULL,
    content_type text NOT NULL,
    bytes bytea NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.consultant_profiles (
    user_id uuid NOT NULL,
    display_name text NOT NULL,
    bio text DEFAULT ''::text NOT NULL,
    languages text[] DEFAULT '{}'::text[] NOT NULL,
    specialities text[] DEFAULT '{}'::text[] NOT NULL,
    rate_chat_paise bigint DEFAULT 1000 NOT NULL,
    rate_voice_paise bigint DEFAULT 1500 NOT NULL,
    rate_video_paise bigint DEFAULT 2000 NOT NULL,
    commission_percent integer,
    rating_sum bigint DEFAULT 0 NOT NULL,
    rating_count bigint DEFAULT 0 NOT NULL,
    away boolean DEFAULT false NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    approved_at timestamp with time zone,
    CONSTRAINT consultant_profiles_commission_percent_check CHECK (((commission_percent >= 0) AND (commission_percent <= 100))),
    CONSTRAINT consultant_profiles_rate_chat_paise_check CHECK ((rate_chat_paise >= 0)),
    CONSTRAINT consultant_profiles_rate_video_paise_check CHECK ((rate_video_paise >= 0)),
    CONSTRAINT consultant_profiles_rate_voice_paise_check CHECK ((rate_voice_paise >= 0)),
    CONSTRAINT consultant_profiles_rating_count_check CHECK ((rating_count >= 0)),
    CONSTRAINT consultant_profiles_rating_sum_check CHECK ((rating_sum >= 0))
);

CREATE TABLE public.consultation_birth_profiles (
    consultation_id uuid NOT NULL,
    profile_id uuid NOT NULL
);

CREATE TABLE public.consultation_charges (
    consultation_id uuid NOT NULL,
    minute integer NOT NULL,
    amount_paise bigint NOT NULL,
    consultant_share_paise bigint NOT NULL,
    source text NOT NULL,
    transfer_id uuid NOT NULL,
    reversal_transfer_id uuid,
    charged_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT consultation_charges_amount_paise_check CHECK ((amount_paise > 0)),
    CONSTRAINT consultation_charges_consultant_share_paise_check CHECK ((consultant_share_paise >= 0)),
    CONSTRAINT consultation_charges_minute_check CHECK ((minute >= 1)),
    CONSTRAINT consultation_charges_source_check CHECK ((source = ANY (ARRAY['wallet'::text, 'promotion'::text])))
);

CREATE TABLE public.consultation_events (
    id bigint NOT NULL,
    consultation_id uuid NOT NULL,
    at timestamp with time zone NOT NULL,
    kind text NOT NULL,
    actor_id uuid,
    node_id text,
    data jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT consultation_events_data_check CHECK ((jsonb_typeof(data) = 'object'::text)),
    CONSTRAINT consultation_events_node_id_check CHECK ((length(node_id) <= 64))
);

ALTER TABLE public.consultation_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.consultation_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.consultation_ratings (
    consultation_id uuid NOT NULL,
    caller_id uuid NOT NULL,
    consultant_id uuid NOT NULL,
    stars smallint NOT NULL,
    comment text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT consultation_ratings_comment_check CHECK ((length(comment) <= 1000)),
    CONSTRAINT consultation_ratings_stars_check CHECK (((stars >= 1) AND (stars <= 5)))
);

CREATE TABLE public.consultations (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    caller_id uuid NOT NULL,
    consultant_id uuid NOT NULL,
    mode text NOT NULL,
    state text DEFAULT 'requested'::text NOT NULL,
    end_reason text,
    rate_paise bigint NOT NULL,
    commission_percent smallint NOT NULL,
    minute_seconds integer NOT NULL,
    free_minutes integer DEFAULT 0 NOT NULL,
    hold_id uuid,
    caller_account_id uuid NOT NULL,
    consultant_account_id uuid,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    ended_at timestamp with time zone,
    ended_by uuid,
    next_charge_at timestamp with time zone,
    minutes_charged integer DEFAULT 0 NOT NULL,
    amount_charged_paise bigint DEFAULT 0 NOT NULL,
    promo_paise bigint DEFAULT 0 NOT NULL,
    consultant_share_paise bigint DEFAULT 0 NOT NULL,
    refunded_paise bigint DEFAULT 0 NOT NULL,
    media_started_at timestamp with time zone,
    unserved text,
    auto_refunded_paise bigint DEFAULT 0 NOT NULL,
    CONSTRAINT consultations_amount_charged_paise_check CHECK ((amount_charged_paise >= 0)),
    CONSTRAINT consultations_auto_refunded_paise_check CHECK ((auto_refunded_paise >= 0)),
    CONSTRAINT consultations_check CHECK ((caller_id <> consultant_id)),
    CONSTRAINT consultations_check1 CHECK (((state = 'ended'::text) = ((end_reason IS NOT NULL) AND (ended_at IS NOT NULL)))),
    CONSTRAINT consultations_check2 CHECK (((state = 'requested'::text) OR (state = 'ended'::text) OR (started_at IS NOT NULL))),
    CONSTRAINT consultations_check3 CHECK ((refunded_paise <= amount_charged_paise)),
    CONSTRAINT consultations_commission_percent_check CHECK (((commission_percent >= 0) AND (commission_percent <= 100))),
    CONSTRAINT consultations_consultant_share_paise_check CHECK ((consultant_share_paise >= 0)),
    CONSTRAINT consultations_end_reason_check CHECK ((end_reason = ANY (ARRAY['completed'::text, 'cancelled'::text, 'rejected'::text, 'timeout'::text, 'insufficient_balance'::text, 'disconnected'::text, 'admin'::text]))),
    CONSTRAINT consultations_free_minutes_check CHECK ((free_minutes >= 0)),
    CONSTRAINT consultations_minute_seconds_check CHECK ((minute_seconds > 0)),
    CONSTRAINT consultations_minutes_charged_check CHECK ((minutes_charged >= 0)),
    CONSTRAINT consultations_mode_check CHECK ((mode = ANY (ARRAY['chat'::text, 'voice'::text, 'video'::text]))),
    CONSTRAINT consultations_promo_paise_check CHECK ((promo_paise >= 0)),
    CONSTRAINT consultations_rate_paise_check CHECK ((rate_paise > 0)),
    CONSTRAINT consultations_refunded_paise_check CHECK ((refunded_paise >= 0)),
    CONSTRAINT consultations_state_check CHECK ((state = ANY (ARRAY['requested'::text, 'active'::text, 'ended'::text]))),
    CONSTRAINT consultations_unserved_check CHECK ((unserved = ANY (ARRAY['no_media'::text, 'unanswered'::text])))
)
WITH (fillfactor='40');

CREATE TABLE public.ledger_accounts (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    kind text NOT NULL,
    owner_id uuid,
    balance_paise bigint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ledger_accounts_balance_nonnegative CHECK (((balance_paise >= 0) OR (kind = ANY (ARRAY['gateway_clearing'::text, 'promotions'::text, 'receivable'::text])))),
    CONSTRAINT ledger_accounts_kind_check CHECK ((kind = ANY (ARRAY['wallet'::text, 'earnings'::text, 'receivable'::text, 'platform_revenue'::text, 'gateway_clearing'::text, 'promotions'::text, 'payouts_clearing'::text]))),
    CONSTRAINT ledger_accounts_owner_matches_kind CHECK (((kind = ANY (ARRAY['wallet'::text, 'earnings'::text, 'receivable'::text])) = (owner_id IS NOT NULL))),
    CONSTRAINT ledger_accounts_receivable_nonpositive CHECK (((kind <> 'receivable'::text) OR (balance_paise <= 0)))
)
WITH (fillfactor='45');

CREATE TABLE public.ledger_entries (
    id bigint NOT NULL,
    transfer_id uuid NOT NULL,
    account_id uuid NOT NULL,
    amount_paise bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    consultation_id uuid,
    CONSTRAINT ledger_entries_amount_paise_check CHECK ((amount_paise <> 0))
);

ALTER TABLE public.ledger_entries ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.ledger_entries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.ledger_holds (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    account_id uuid NOT NULL,
    amount_paise bigint NOT NULL,
    reference text NOT NULL,
    state text DEFAULT 'open'::text NOT NULL,
    posted_paise bigint DEFAULT 0 NOT NULL,
    transfer_id uuid,
    expires_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    resolved_at timestamp with time zone,
    CONSTRAINT ledger_holds_amount_paise_check CHECK ((amount_paise > 0)),
    CONSTRAINT ledger_holds_check CHECK (((posted_paise >= 0) AND (posted_paise <= amount_paise))),
    CONSTRAINT ledger_holds_resolution CHECK (((state = 'open'::text) = (resolved_at IS NULL))),
    CONSTRAINT ledger_holds_state_check CHECK ((state = ANY (ARRAY['open'::text, 'posted'::text, 'voided'::text])))
);

CREATE TABLE public.ledger_transfers (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    idempotency_key text NOT NULL,
    kind text NOT NULL,
    content_hash text NOT NULL,
    consultation_id uuid,
    memo text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.payment_anomalies (
    id bigint NOT NULL,
    kind text NOT NULL,
    gateway_order_id text,
    payment_id text,
    expected_paise bigint,
    received_paise bigint,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE public.payment_anomalies ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.payment_anomalies_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.payment_orders (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    gateway text NOT NULL,
    gateway_order_id text NOT NULL,
    amount_paise bigint NOT NULL,
    currency text DEFAULT 'INR'::text NOT NULL,
    status text DEFAULT 'created'::text NOT NULL,
    payment_id text,
    transfer_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    paid_at timestamp with time zone,
    CONSTRAINT payment_orders_amount_paise_check CHECK (((amount_paise >= 100) AND (amount_paise <= 10000000))),
    CONSTRAINT payment_orders_check CHECK (((status = 'paid'::text) = (transfer_id IS NOT NULL))),
    CONSTRAINT payment_orders_gateway_check CHECK ((gateway = ANY (ARRAY['razorpay'::text, 'simulator'::text]))),
    CONSTRAINT payment_orders_status_check CHECK ((status = ANY (ARRAY['created'::text, 'paid'::text, 'failed'::text])))
);

CREATE TABLE public.payment_webhook_events (
    event_id text NOT NULL,
    event text NOT NULL,
    outcome text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.payouts (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    consultant_id uuid NOT NULL,
    amount_paise bigint NOT NULL,
    state text DEFAULT 'requested'::text NOT NULL,
    hold_id uuid NOT NULL,
    transfer_id uuid,
    bank_reference text,
    failure_reason text,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    decided_at timestamp with time zone,
    decided_by uuid,
    settled_at timestamp with time zone,
    CONSTRAINT payouts_amount_paise_check CHECK ((amount_paise > 0)),
    CONSTRAINT payouts_check CHECK (((state = 'posted'::text) = ((transfer_id IS NOT NULL) AND (bank_reference IS NOT NULL)))),
    CONSTRAINT payouts_state_check CHECK ((state = ANY (ARRAY['requested'::text, 'approved'::text, 'rejected'::text, 'posted'::text, 'voided'::text, 'failed'::text])))
);

CREATE TABLE public.recordings (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    consultation_id uuid NOT NULL,
    party text NOT NULL,
    kind text NOT NULL,
    codec text NOT NULL,
    segment integer DEFAULT 0 NOT NULL,
    storage_key text NOT NULL,
    status text DEFAULT 'recording'::text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone,
    offset_ms bigint DEFAULT 0 NOT NULL,
    duration_ms bigint,
    bytes bigint,
    sha256 text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT recordings_bytes_check CHECK ((bytes >= 0)),
    CONSTRAINT recordings_check CHECK (((party = 'review'::text) = (kind = 'review'::text))),
    CONSTRAINT recordings_duration_ms_check CHECK ((duration_ms >= 0)),
    CONSTRAINT recordings_kind_check CHECK ((kind = ANY (ARRAY['audio'::text, 'video'::text, 'review'::text]))),
    CONSTRAINT recordings_offset_ms_check CHECK ((offset_ms >= 0)),
    CONSTRAINT recordings_party_check CHECK ((party = ANY (ARRAY['caller'::text, 'astrologer'::text, 'review'::text]))),
    CONSTRAINT recordings_segment_check CHECK ((segment >= 0)),
    CONSTRAINT recordings_status_check CHECK ((status = ANY (ARRAY['recording'::text, 'complete'::text, 'partial'::text, 'failed'::text])))
);

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    sha256 text
);

CREATE TABLE public.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    display_name text NOT NULL,
    role text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    token_version integer DEFAULT 0 NOT NULL,
    disabled_at timestamp with time zone,
    CONSTRAINT users_email_check CHECK ((email = lower(email))),
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['user'::text, 'consultant'::text, 'admin'::text]))),
    CONSTRAINT users_token_version_check CHECK ((token_version >= 0))
);

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT billing_audit_log_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.birth_profiles
    ADD CONSTRAINT birth_profiles_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.chat_messages
    ADD CONSTRAINT chat_messages_consultation_id_sender_id_client_id_key UNIQUE (consultation_id, sender_id, client_id);

ALTER TABLE ONLY public.chat_messages
    ADD CONSTRAINT chat_messages_consultation_id_seq_key UNIQUE (consultation_id, seq);

ALTER TABLE ONLY public.chat_messages
    ADD CONSTRAINT chat_messages_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.chat_reads
    ADD CONSTRAINT chat_reads_pkey PRIMARY KEY (consultation_id, user_id);

ALTER TABLE ONLY public.chat_rooms
    ADD CONSTRAINT chat_rooms_pkey PRIMARY KEY (consultation_id);

ALTER TABLE ONLY public.chat_uploads
    ADD CONSTRAINT chat_uploads_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.consult_waitlist
    ADD CONSTRAINT consult_waitlist_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.consultant_photos
    ADD CONSTRAINT consultant_photos_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY public.consultant_profiles
    ADD CONSTRAINT consultant_profiles_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY public.consultation_birth_profiles
    ADD CONSTRAINT consultation_birth_profiles_pkey PRIMARY KEY (consultation_id);

ALTER TABLE ONLY public.consultation_charges
    ADD CONSTRAINT consultation_charges_pkey PRIMARY KEY (consultation_id, minute);

ALTER TABLE ONLY public.consultation_events
    ADD CONSTRAINT consultation_events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.consultation_ratings
    ADD CONSTRAINT consultation_ratings_pkey PRIMARY KEY (consultation_id);

ALTER TABLE ONLY public.consultations
    ADD CONSTRAINT consultations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.ledger_accounts
    ADD CONSTRAINT ledger_accounts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.ledger_entries
    ADD CONSTRAINT ledger_entries_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.ledger_holds
    ADD CONSTRAINT ledger_holds_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.ledger_holds
    ADD CONSTRAINT ledger_holds_reference_key UNIQUE (reference);

ALTER TABLE ONLY public.ledger_transfers
    ADD CONSTRAINT ledger_transfers_idempotency_key_key UNIQUE (idempotency_key);

ALTER TABLE ONLY public.ledger_transfers
    ADD CONSTRAINT ledger_transfers_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.payment_anomalies
    ADD CONSTRAINT payment_anomalies_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.payment_orders
    ADD CONSTRAINT payment_orders_gateway_order_id_key UNIQUE (gateway_order_id);

ALTER TABLE ONLY public.payment_orders
    ADD CONSTRAINT payment_orders_payment_id_key UNIQUE (payment_id);

ALTER TABLE ONLY public.payment_orders
    ADD CONSTRAINT payment_orders_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.payment_webhook_events
    ADD CONSTRAINT payment_webhook_events_pkey PRIMARY KEY (event_id);

ALTER TABLE ONLY public.payouts
    ADD CONSTRAINT payouts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.recordings
    ADD CONSTRAINT recordings_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.recordings
    ADD CONSTRAINT recordings_storage_key_key UNIQUE (storage_key);

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_email_key UNIQUE (email);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

CREATE INDEX audit_log_created ON public.audit_log USING btree (created_at DESC);

CREATE INDEX audit_log_subject ON public.audit_log USING btree (subject_type, subject_id);

CREATE INDEX birth_profiles_owner ON public.birth_profiles USING btree (owner_id, created_at);

CREATE INDEX chat_uploads_consultation ON public.chat_uploads USING btree (consultation_id);

CREATE INDEX chat_uploads_uploader_recent ON public.chat_uploads USING btree (uploader_id, created_at);

CREATE UNIQUE INDEX consult_waitlist_one_place ON public.consult_waitlist USING btree (caller_id) WHERE (state = ANY (ARRAY['queued'::text, 'offered'::text]));

CREATE UNIQUE INDEX consult_waitlist_open ON public.consult_waitlist USING btree (consultant_id, caller_id) WHERE (state = ANY (ARRAY['queued'::text, 'offered'::text]));

CREATE INDEX consult_waitlist_queue ON public.consult_waitlist USING btree (consultant_id, created_at, id) WHERE (state = ANY (ARRAY['queued'::text, 'offered'::text]));

CREATE INDEX consultant_profiles_languages ON public.consultant_profiles USING gin (languages);

CREATE INDEX consultant_profiles_specialities ON public.consultant_profiles USING gin (specialities);

CREATE INDEX consultation_birth_profiles_profile ON public.consultation_birth_profiles USING btree (profile_id);

CREATE INDEX consultation_events_timeline ON public.consultation_events USING btree (consultation_id, at, id);

CREATE INDEX consultation_ratings_consultant ON public.consultation_ratings USING btree (consultant_id, created_at);

CREATE INDEX consultations_active ON public.consultations USING btree (id) WHERE (state = 'active'::text);

CREATE INDEX consultations_caller ON public.consultations USING btree (caller_id, requested_at DESC);

CREATE INDEX consultations_consultant_live ON public.consultations USING btree (consultant_id) WHERE (state = ANY (ARRAY['requested'::text, 'active'::text]));

CREATE INDEX consultations_newest ON public.consultations USING btree (requested_at DESC, id DESC);

CREATE UNIQUE INDEX consultations_one_active_per_consultant ON public.consultations USING btree (consultant_id) WHERE (state = 'active'::text);

CREATE UNIQUE INDEX consultations_one_live_per_caller ON public.consultations USING btree (caller_id) WHERE (state = ANY (ARRAY['requested'::text, 'active'::text]));

CREATE INDEX consultations_requested ON public.consultations USING btree (requested_at) WHERE (state = 'requested'::text);

CREATE UNIQUE INDEX ledger_accounts_owned ON public.ledger_accounts USING btree (kind, owner_id) WHERE (owner_id IS NOT NULL);

CREATE UNIQUE INDEX ledger_accounts_system ON public.ledger_accounts USING btree (kind) WHERE (owner_id IS NULL);

CREATE INDEX ledger_entries_account ON public.ledger_entries USING btree (account_id, id);

CREATE INDEX ledger_entries_transfer ON public.ledger_entries USING btree (transfer_id);

CREATE INDEX ledger_holds_open_account ON public.ledger_holds USING btree (account_id) WHERE (state = 'open'::text);

CREATE INDEX ledger_holds_open_expiry ON public.ledger_holds USING btree (expires_at) WHERE (state = 'open'::text);

CREATE INDEX ledger_transfers_consultation ON public.ledger_transfers USING btree (consultation_id) WHERE (consultation_id IS NOT NULL);

CREATE INDEX payment_orders_user ON public.payment_orders USING btree (user_id, created_at DESC);

CREATE INDEX payouts_approved ON public.payouts USING btree (decided_at) WHERE (state = 'approved'::text);

CREATE UNIQUE INDEX payouts_one_pending ON public.payouts USING btree (consultant_id) WHERE (state = ANY (ARRAY['requested'::text, 'approved'::text]));

CREATE INDEX recordings_consultation ON public.recordings USING btree (consultation_id, party, kind, segment);

CREATE INDEX recordings_created ON public.recordings USING btree (created_at);

CREATE INDEX recordings_status ON public.recordings USING btree (status) WHERE (status = 'recording'::text);

CREATE TRIGGER consultation_charges_check AFTER INSERT ON public.consultation_charges REFERENCING NEW TABLE AS new_charges FOR EACH STATEMENT EXECUTE FUNCTION public.consultation_charges_check();

CREATE TRIGGER consultation_events_immutable BEFORE DELETE OR UPDATE ON public.consultation_events FOR EACH ROW EXECUTE FUNCTION public.ledger_immutable();

CREATE TRIGGER consultation_events_no_truncate BEFORE TRUNCATE ON public.consultation_events FOR EACH STATEMENT EXECUTE FUNCTION public.ledger_immutable();

CREATE TRIGGER consultations_no_delete BEFORE DELETE ON public.consultations FOR EACH ROW EXECUTE FUNCTION public.ledger_immutable();

CREATE TRIGGER consultations_no_truncate BEFORE TRUNCATE ON public.consultations FOR EACH STATEMENT EXECUTE FUNCTION public.ledger_immutable();

CREATE CONSTRAINT TRIGGER ledger_accounts_earnings_covered AFTER UPDATE ON public.ledger_accounts DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (((new.kind = 'earnings'::text) AND (new.balance_paise < old.balance_paise))) EXECUTE FUNCTION public.earnings_cover_holds();

CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON public.ledger_accounts FOR EACH ROW EXECUTE FUNCTION public.ledger_immutable();

CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON public.ledger_accounts FOR EACH STATEMENT EXECUTE FUNCTION public.ledger_immutable();

CREATE TRIGGER ledger_entries_apply AFTER INSERT ON public.ledger_entries REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION public.ledger_entries_apply();

CREATE TRIGGER ledger_entries_immutable BEFORE DELETE OR UPDATE ON public.ledger_entries FOR EACH ROW EXECUTE FUNCTION public.ledger_immutable();

CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON public.ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION public.ledger_immutable();

CREATE CONSTRAINT TRIGGER ledger_holds_earnings_covered AFTER INSERT ON public.ledger_holds DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.earnings_cover_holds();

CREATE TRIGGER ledger_holds_no_delete BEFORE DELETE ON public.ledger_holds FOR EACH ROW EXECUTE FUNCTION public.ledger_immutable();

CREATE TRIGGER ledger_holds_resolve_once BEFORE UPDATE ON public.ledger_holds FOR EACH ROW EXECUTE FUNCTION public.ledger_holds_resolve_once();

CREATE TRIGGER ledger_transfers_immutable BEFORE DELETE OR UPDATE ON public.ledger_transfers FOR EACH ROW EXECUTE FUNCTION public.ledger_immutable();

CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON public.ledger_transfers FOR EACH STATEMENT EXECUTE FUNCTION public.ledger_immutable();

CREATE TRIGGER users_revoke_on_disable BEFORE UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.users_revoke_on_disable();

ALTER TABLE ONLY public.birth_profiles
    ADD CONSTRAINT birth_profiles_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.chat_messages
    ADD CONSTRAINT chat_messages_sender_id_fkey FOREIGN KEY (sender_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.chat_messages
    ADD CONSTRAINT chat_messages_upload_id_fkey FOREIGN KEY (upload_id) REFERENCES public.chat_uploads(id);

ALTER TABLE ONLY public.chat_reads
    ADD CONSTRAINT chat_reads_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.chat_uploads
    ADD CONSTRAINT chat_uploads_uploader_id_fkey FOREIGN KEY (uploader_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.consult_waitlist
    ADD CONSTRAINT consult_waitlist_caller_id_fkey FOREIGN KEY (caller_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.consult_waitlist
    ADD CONSTRAINT consult_waitlist_consultant_id_fkey FOREIGN KEY (consultant_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.consultant_photos
    ADD CONSTRAINT consultant_photos_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.consultant_profiles
    ADD CONSTRAINT consultant_profiles_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.consultation_birth_profiles
    ADD CONSTRAINT consultation_birth_profiles_consultation_id_fkey FOREIGN KEY (consultation_id) REFERENCES public.consultations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.consultation_birth_profiles
    ADD CONSTRAINT consultation_birth_profiles_profile_id_fkey FOREIGN KEY (profile_id) REFERENCES public.birth_profiles(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.consultation_charges
    ADD CONSTRAINT consultation_charges_reversal_transfer_id_fkey FOREIGN KEY (reversal_transfer_id) REFERENCES public.ledger_transfers(id);

ALTER TABLE ONLY public.consultation_ratings
    ADD CONSTRAINT consultation_ratings_caller_id_fkey FOREIGN KEY (caller_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.consultation_ratings
    ADD CONSTRAINT consultation_ratings_consultant_id_fkey FOREIGN KEY (consultant_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.consultation_ratings
    ADD CONSTRAINT consultation_ratings_consultation_id_fkey FOREIGN KEY (consultation_id) REFERENCES public.consultations(id);

ALTER TABLE ONLY public.consultations
    ADD CONSTRAINT consultations_caller_account_id_fkey FOREIGN KEY (caller_account_id) REFERENCES public.ledger_accounts(id);

ALTER TABLE ONLY public.consultations
    ADD CONSTRAINT consultations_caller_id_fkey FOREIGN KEY (caller_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.consultations
    ADD CONSTRAINT consultations_consultant_account_id_fkey FOREIGN KEY (consultant_account_id) REFERENCES public.ledger_accounts(id);

ALTER TABLE ONLY public.consultations
    ADD CONSTRAINT consultations_consultant_id_fkey FOREIGN KEY (consultant_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.consultations
    ADD CONSTRAINT consultations_hold_id_fkey FOREIGN KEY (hold_id) REFERENCES public.ledger_holds(id);

ALTER TABLE ONLY public.ledger_accounts
    ADD CONSTRAINT ledger_accounts_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.ledger_holds
    ADD CONSTRAINT ledger_holds_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.ledger_accounts(id);

ALTER TABLE ONLY public.ledger_holds
    ADD CONSTRAINT ledger_holds_transfer_id_fkey FOREIGN KEY (transfer_id) REFERENCES public.ledger_transfers(id);

ALTER TABLE ONLY public.payment_orders
    ADD CONSTRAINT payment_orders_transfer_id_fkey FOREIGN KEY (transfer_id) REFERENCES public.ledger_transfers(id);

ALTER TABLE ONLY public.payment_orders
    ADD CONSTRAINT payment_orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.payouts
    ADD CONSTRAINT payouts_consultant_id_fkey FOREIGN KEY (consultant_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.payouts
    ADD CONSTRAINT payouts_hold_id_fkey FOREIGN KEY (hold_id) REFERENCES public.ledger_holds(id);

ALTER TABLE ONLY public.payouts
    ADD CONSTRAINT payouts_transfer_id_fkey FOREIGN KEY (transfer_id) REFERENCES public.ledger_transfers(id);
