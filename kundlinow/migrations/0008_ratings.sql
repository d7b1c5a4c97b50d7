-- A caller rates a finished, paid consultation once; the astrologer's aggregate follows.
CREATE TABLE consultation_ratings (
    consultation_id uuid PRIMARY KEY REFERENCES consultations (id),
    caller_id       uuid NOT NULL REFERENCES users (id),
    consultant_id   uuid NOT NULL REFERENCES users (id),
    stars           smallint NOT NULL CHECK (stars BETWEEN 1 AND 5),
    comment         text NOT NULL DEFAULT '' CHECK (length(comment) <= 1000),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consultation_ratings_consultant ON consultation_ratings (consultant_id, created_at);
