-- Token revocation (issue 11, point 12): every access token carries the user's token_version
-- ("ver"); a password change, "log out everywhere" and disabling the account bump it, so every
-- token issued before stops working. A disabled account cannot sign in or use any token.
ALTER TABLE users
    ADD COLUMN token_version integer NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    ADD COLUMN disabled_at timestamptz;
