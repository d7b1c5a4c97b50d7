-- 0017 session log: the timeline of each consultation, append-only (core/session_log.py).
--
-- Written by the package where each thing happens: billing in the transaction (or the very
-- statement, billing/charging.py) that moves the money; the signalling hub and the SFU through a
-- batched writer. `kind` is snake_case past tense (requested, socket_connected,
-- ice_state_changed, first_media, ended, ...; checked by core.session_log.SessionEvent, not per
-- row here); `data` holds its details. Charged minutes are not copied in: the log's reader
-- (billing/timeline.py) takes them from consultation_charges, which already has one row each.
--
-- No foreign key to consultations: like consultation_charges (0009) a per-row key check would
-- cost the billing tick a lookup and a lock per charged minute, and consultations are never
-- deleted (0009), so there is nothing for events to outlive. For the same reason there is no
-- retention cascade: the log is kept as long as the consultation and its ledger rows are, and
-- nothing may UPDATE, DELETE or TRUNCATE it (the ledger's append-only trigger function).
CREATE TABLE consultation_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consultation_id uuid NOT NULL,
    at              timestamptz NOT NULL,
    kind            text NOT NULL,
    actor_id        uuid,
    node_id         text CHECK (length(node_id) <= 64),
    data            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object')
);

-- One consultation's timeline in order (GET /admin/consultations/{id}/log); id breaks ties of
-- events written at the same instant in the order they were written.
CREATE INDEX consultation_events_timeline ON consultation_events (consultation_id, at, id);

CREATE TRIGGER consultation_events_immutable BEFORE UPDATE OR DELETE ON consultation_events
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER consultation_events_no_truncate BEFORE TRUNCATE ON consultation_events
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();

-- The admin search (GET /admin/consultations) pages newest first. requested_at never changes,
-- so the tick's updates of consultations stay heap-only (0009).
CREATE INDEX consultations_newest ON consultations (requested_at DESC, id DESC);
