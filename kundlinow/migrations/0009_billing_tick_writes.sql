-- 0009 billing: fewer row writes per charged minute.
--
-- 1. Room for one new version of every row per page, so the tick's updates stay heap-only (HOT:
--    no index entries). 0006's fillfactors (70 / 80) left space for about a third of the rows
--    of a page; the rest were full updates adding an entry to each of the consultations' seven
--    indexes (and the accounts' three). A consultation row is ~220 bytes, an account ~100:
--    at 40 / 45 a page keeps more free space than its rows take, and the next access prunes the
--    old versions. Applies to pages written from now on (VACUUM FULL rewrites existing ones).
ALTER TABLE consultations SET (fillfactor = 40);
ALTER TABLE ledger_accounts SET (fillfactor = 45);

-- 2. The per-row foreign-key trigger of consultation_charges.consultation_id (one lookup and
--    key-share lock per charged minute, on a consultation the charging transaction already holds
--    FOR UPDATE) becomes part of 0006's statement-level check. Consultations are never deleted
--    (now a trigger), so existence at insert time is existence forever.
ALTER TABLE consultation_charges DROP CONSTRAINT consultation_charges_consultation_id_fkey;

CREATE TRIGGER consultations_no_delete BEFORE DELETE ON consultations
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER consultations_no_truncate BEFORE TRUNCATE ON consultations
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();

CREATE OR REPLACE FUNCTION consultation_charges_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_charges n LEFT JOIN ledger_transfers t ON t.id = n.transfer_id
                WHERE t.id IS NULL) THEN
        RAISE EXCEPTION 'consultation charge refers to a missing transfer' USING ERRCODE = '23503';
    END IF;
    IF EXISTS (SELECT 1 FROM new_charges n LEFT JOIN consultations k ON k.id = n.consultation_id
                WHERE k.id IS NULL) THEN
        RAISE EXCEPTION 'consultation charge refers to a missing consultation'
            USING ERRCODE = '23503';
    END IF;
    RETURN NULL;
END $$;
