-- Recordings: one row per stored file (one track of one party, one segment; or the composed
-- review MP4). consultation_id is not a foreign key, like the chat's (0003): the recorder must
-- not depend on billing's migration order, and a row outlives nothing it points to.
CREATE TABLE recordings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consultation_id uuid NOT NULL,
    party           text NOT NULL CHECK (party IN ('caller', 'astrologer', 'review')),
    kind            text NOT NULL CHECK (kind IN ('audio', 'video', 'review')),
    codec           text NOT NULL,
    segment         integer NOT NULL DEFAULT 0 CHECK (segment >= 0),
    storage_key     text NOT NULL UNIQUE,
    status          text NOT NULL DEFAULT 'recording'
                    CHECK (status IN ('recording', 'complete', 'partial', 'failed')),
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    -- first media timestamp of the file on the consultation clock (ms since started_at of
    -- the consultation's recording)
    offset_ms       bigint NOT NULL DEFAULT 0 CHECK (offset_ms >= 0),
    duration_ms     bigint CHECK (duration_ms >= 0),
    bytes           bigint CHECK (bytes >= 0),
    sha256          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((party = 'review') = (kind = 'review'))
);
CREATE INDEX recordings_consultation ON recordings (consultation_id, party, kind, segment);
CREATE INDEX recordings_status ON recordings (status) WHERE status = 'recording';
CREATE INDEX recordings_created ON recordings (created_at);
