-- 0006 billing: set-based referential checks for the bulk ledger writes.
--
-- The billing tick inserts tens of thousands of entries per statement; per-row foreign-key
-- triggers (one lookup query per entry) were a third of its time. They are replaced by the same
-- guarantees checked once per statement: every new entry's transfer and account exist, every
-- new charge's transfer exists. Ledger accounts and transfers can never be deleted (triggers),
-- so existence at insert time is existence forever.

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_transfer_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_account_id_fkey;
ALTER TABLE consultation_charges DROP CONSTRAINT consultation_charges_transfer_id_fkey;

CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();

CREATE OR REPLACE FUNCTION ledger_entries_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad uuid;
    wanted integer;
    applied integer;
BEGIN
    SELECT transfer_id INTO bad FROM new_entries
        GROUP BY transfer_id HAVING sum(amount_paise) <> 0 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transfer % is unbalanced', bad USING ERRCODE = '23514';
    END IF;
    SELECT n.transfer_id INTO bad FROM (SELECT DISTINCT transfer_id FROM new_entries) n
        LEFT JOIN ledger_transfers t ON t.id = n.transfer_id WHERE t.id IS NULL LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'ledger entry refers to missing transfer %', bad USING ERRCODE = '23503';
    END IF;
    SELECT count(*) INTO wanted FROM (SELECT DISTINCT account_id FROM new_entries) d;
    -- Lock in id order first (billing/ledger.py rule 2): owned accounts are already held by
    -- the caller, system accounts are taken here, so concurrent writers never deadlock.
    PERFORM 1 FROM ledger_accounts
      WHERE id IN (SELECT DISTINCT account_id FROM new_entries) ORDER BY id FOR UPDATE;
    UPDATE ledger_accounts a SET balance_paise = a.balance_paise + d.delta
      FROM (SELECT account_id, sum(amount_paise) AS delta FROM new_entries
             GROUP BY account_id) d
     WHERE a.id = d.account_id;
    GET DIAGNOSTICS applied = ROW_COUNT;
    IF applied <> wanted THEN
        RAISE EXCEPTION 'ledger entry refers to a missing account' USING ERRCODE = '23503';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION consultation_charges_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_charges n LEFT JOIN ledger_transfers t ON t.id = n.transfer_id
                WHERE t.id IS NULL) THEN
        RAISE EXCEPTION 'consultation charge refers to a missing transfer' USING ERRCODE = '23503';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER consultation_charges_check AFTER INSERT ON consultation_charges
    REFERENCING NEW TABLE AS new_charges
    FOR EACH STATEMENT EXECUTE FUNCTION consultation_charges_check();

-- Heap-only (HOT) updates for the rows every tick rewrites: a consultation's counters and an
-- account's balance are not indexed, and pages keep free space for the new row versions. The
-- tick finds due consultations through the partial index of active ones (a few thousand rows
-- at most per node, filtered on next_charge_at in memory) instead of an index on
-- next_charge_at, which changed on every charge and prevented HOT.
DROP INDEX consultations_due;
CREATE INDEX consultations_active ON consultations (id) WHERE state = 'active';
ALTER TABLE consultations SET (fillfactor = 70);
ALTER TABLE ledger_accounts SET (fillfactor = 80);
