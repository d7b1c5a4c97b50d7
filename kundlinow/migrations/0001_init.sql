-- Foundation: users and consultant profiles.
-- No extensions: the embedded PostgreSQL (pgserver wheel) ships none but plpgsql, so emails are
-- stored lower-cased (the API normalises them) and compared exactly.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash text NOT NULL,
    display_name  text NOT NULL,
    role          text NOT NULL CHECK (role IN ('user', 'consultant', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consultant_profiles (
    user_id          uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    display_name     text NOT NULL,
    bio              text NOT NULL DEFAULT '',
    languages        text[] NOT NULL DEFAULT '{}',
    specialities     text[] NOT NULL DEFAULT '{}',
    rate_chat_paise  bigint NOT NULL DEFAULT 1000 CHECK (rate_chat_paise >= 0),
    rate_voice_paise bigint NOT NULL DEFAULT 1500 CHECK (rate_voice_paise >= 0),
    rate_video_paise bigint NOT NULL DEFAULT 2000 CHECK (rate_video_paise >= 0),
    commission_percent integer CHECK (commission_percent BETWEEN 0 AND 100),
    rating_sum       bigint NOT NULL DEFAULT 0 CHECK (rating_sum >= 0),
    rating_count     bigint NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    away             boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX consultant_profiles_languages ON consultant_profiles USING gin (languages);
CREATE INDEX consultant_profiles_specialities ON consultant_profiles USING gin (specialities);
