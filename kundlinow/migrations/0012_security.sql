-- Security hardening (issue 11).
--
-- Token revocation (point 12): every access token carries the user's token_version ("ver"); a
-- password change, "log out everywhere" and disabling the account bump it, so every token
-- issued before stops working. A disabled account cannot sign in or use any token.
-- users.disabled_at comes with the admin console's migration (0015).
ALTER TABLE users
    ADD COLUMN token_version integer NOT NULL DEFAULT 0 CHECK (token_version >= 0);

-- Whoever disables an account (admin console, CLI, SQL by hand), its tokens are revoked: the
-- rule lives here, not in each caller. No column list on the trigger and the column named only
-- inside the function body (resolved when it runs), because disabled_at is added by 0015.
CREATE FUNCTION users_revoke_on_disable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.disabled_at IS NOT NULL AND OLD.disabled_at IS NULL
       AND NEW.token_version = OLD.token_version THEN
        NEW.token_version := OLD.token_version + 1;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER users_revoke_on_disable
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_revoke_on_disable();

-- Upload quotas (point 11): the per-user window sums a user's recent uploads.
CREATE INDEX chat_uploads_uploader_recent ON chat_uploads (uploader_id, created_at);
