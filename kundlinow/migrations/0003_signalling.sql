-- Signalling: durable chat (messages, per-room sequence, read markers, image uploads) and the
-- astrologers' FIFO waitlists. consultation_id is not a foreign key on purpose: billing owns the
-- consultations table (0002) and the chat must not depend on its migration order.

CREATE TABLE chat_rooms (
    consultation_id uuid PRIMARY KEY,
    last_seq        bigint NOT NULL CHECK (last_seq >= 0)
);

CREATE TABLE chat_uploads (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consultation_id uuid NOT NULL,
    uploader_id     uuid NOT NULL REFERENCES users (id),
    content_type    text NOT NULL,
    size_bytes      integer NOT NULL CHECK (size_bytes > 0),
    sha256          text NOT NULL,
    data            bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_uploads_consultation ON chat_uploads (consultation_id);

CREATE TABLE chat_messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consultation_id uuid NOT NULL,
    seq             bigint NOT NULL CHECK (seq > 0),
    sender_id       uuid NOT NULL REFERENCES users (id),
    client_id       text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 64),
    kind            text NOT NULL CHECK (kind IN ('text', 'image')),
    body            text,
    upload_id       uuid REFERENCES chat_uploads (id),
    masked          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'text') = (body IS NOT NULL AND upload_id IS NULL)),
    CHECK ((kind = 'image') = (upload_id IS NOT NULL AND body IS NULL)),
    UNIQUE (consultation_id, seq),
    -- a resent client message id is stored once
    UNIQUE (consultation_id, sender_id, client_id)
);

CREATE TABLE chat_reads (
    consultation_id uuid NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id),
    last_read_seq   bigint NOT NULL CHECK (last_read_seq >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consultation_id, user_id)
);

CREATE TABLE consult_waitlist (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consultant_id uuid NOT NULL REFERENCES users (id),
    caller_id     uuid NOT NULL REFERENCES users (id),
    mode          text NOT NULL CHECK (mode IN ('chat', 'voice', 'video')),
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'offered', 'taken', 'left', 'expired')),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    offered_at    timestamptz,
    closed_at     timestamptz,
    CHECK (caller_id <> consultant_id)
);
-- one open entry per caller per astrologer
CREATE UNIQUE INDEX consult_waitlist_open
    ON consult_waitlist (consultant_id, caller_id) WHERE state IN ('queued', 'offered');
CREATE INDEX consult_waitlist_queue
    ON consult_waitlist (consultant_id, created_at, id) WHERE state IN ('queued', 'offered');
