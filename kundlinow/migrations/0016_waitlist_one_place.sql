-- Waitlist hardening (issue 11 #10). A caller holds at most one open place (queued or offered)
-- across all astrologers, so a handful of accounts cannot sit in every queue; and a caller who
-- can no longer start when the slot comes to them is 'skipped' instead of holding it.
ALTER TABLE consult_waitlist DROP CONSTRAINT consult_waitlist_state_check;
ALTER TABLE consult_waitlist ADD CONSTRAINT consult_waitlist_state_check
    CHECK (state IN ('queued', 'offered', 'taken', 'left', 'expired', 'skipped'));

-- Places held before this migration: each caller keeps the oldest.
UPDATE consult_waitlist w SET state = 'left', closed_at = now()
WHERE w.state IN ('queued', 'offered')
  AND EXISTS (SELECT 1 FROM consult_waitlist o
              WHERE o.caller_id = w.caller_id AND o.state IN ('queued', 'offered')
                AND (o.created_at, o.id) < (w.created_at, w.id));

CREATE UNIQUE INDEX consult_waitlist_one_place
    ON consult_waitlist (caller_id) WHERE state IN ('queued', 'offered');
