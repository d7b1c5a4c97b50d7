-- The admin console's user management and the astrologer's profile photo.
-- A disabled account cannot log in (existing tokens run out within JWT_TTL); approval marks an
-- astrologer the platform has checked (shown to callers as "Verified"; it does not hide anyone).
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
ALTER TABLE consultant_profiles ADD COLUMN approved_at timestamptz;

-- One photo per astrologer, replaced on upload; served at GET /consultants/{id}/photo.
CREATE TABLE consultant_photos (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    content_type text NOT NULL,
    bytes        bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_created ON audit_log (created_at DESC);
