-- Birth profiles (issue 15): a caller's birth details, sealed with AES-256-GCM by the service
-- (birth/sealing.py). Nothing but ids and timestamps is in clear text; a delete removes the row.

CREATE TABLE birth_profiles (
    id         uuid PRIMARY KEY,
    owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX birth_profiles_owner ON birth_profiles (owner_id, created_at);

-- The profile a caller started a consultation with: the astrologer's right to read it.
CREATE TABLE consultation_birth_profiles (
    consultation_id uuid PRIMARY KEY REFERENCES consultations (id) ON DELETE CASCADE,
    profile_id      uuid NOT NULL REFERENCES birth_profiles (id) ON DELETE CASCADE
);
CREATE INDEX consultation_birth_profiles_profile ON consultation_birth_profiles (profile_id);
