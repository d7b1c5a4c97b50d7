-- Security hardening (issue 11).
--
-- Token revocation (point 12): every access token carries the user's token_version ("ver"); a
-- password change, "log out everywhere" and disabling the account bump it, so every token
-- issued before stops working. A disabled account cannot sign in or use any token.
ALTER TABLE users
    ADD COLUMN token_version integer NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    ADD COLUMN disabled_at timestamptz;

-- Upload quotas (point 11): the per-user window sums a user's recent uploads.
CREATE INDEX chat_uploads_uploader_recent ON chat_uploads (uploader_id, created_at);
