-- 0011 billing: binding payout holds, consultant receivables, failed payouts, unserved
-- consultations (issue #11, money points 1, 2 and 6).
--
-- 1. A consultant's `receivable` account records what they owe the platform: when a refund or a
--    minute reversal takes back more of their share than their available earnings (balance -
--    open holds) hold, the platform advances the rest and the receivable runs negative; it is
--    settled from later earnings (billing/settlement.py). It never goes above zero.
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
    CHECK (kind IN ('wallet', 'earnings', 'receivable', 'platform_revenue', 'gateway_clearing',
                    'promotions', 'payouts_clearing'));
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_owner_matches_kind;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_owner_matches_kind
    CHECK ((kind IN ('wallet', 'earnings', 'receivable')) = (owner_id IS NOT NULL));
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_balance_nonnegative;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_balance_nonnegative
    CHECK (balance_paise >= 0 OR kind IN ('gateway_clearing', 'promotions', 'receivable'));
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_receivable_nonpositive
    CHECK (kind <> 'receivable' OR balance_paise <= 0);

-- 2. Payout holds bind: an earnings account's balance never falls below its open holds. Checked
--    at commit (a payout posts its transfer before it marks its hold posted, inside one
--    transaction), only for earnings debits and new holds on earnings, so the tick's earnings
--    credits never fire it.
CREATE FUNCTION earnings_cover_holds() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    acct uuid;
    short bigint;
BEGIN
    IF TG_TABLE_NAME = 'ledger_holds' THEN
        acct := NEW.account_id;
    ELSE
        acct := NEW.id;
    END IF;
    SELECT COALESCE((SELECT sum(h.amount_paise) FROM ledger_holds h
                      WHERE h.account_id = a.id AND h.state = 'open'), 0) - a.balance_paise
      INTO short
      FROM ledger_accounts a WHERE a.id = acct AND a.kind = 'earnings';
    IF short > 0 THEN
        RAISE EXCEPTION 'earnings % are % paise below their open holds', acct, short
            USING ERRCODE = '23514';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_holds_earnings_covered AFTER INSERT ON ledger_holds
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION earnings_cover_holds();
CREATE CONSTRAINT TRIGGER ledger_accounts_earnings_covered AFTER UPDATE ON ledger_accounts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.kind = 'earnings' AND NEW.balance_paise < OLD.balance_paise)
    EXECUTE FUNCTION earnings_cover_holds();

-- 3. `payouts run` settles each payout on its own: an unexpected failure marks it `failed`
--    (reason recorded, hold released) and the run goes on.
ALTER TABLE payouts DROP CONSTRAINT payouts_state_check;
ALTER TABLE payouts ADD CONSTRAINT payouts_state_check
    CHECK (state IN ('requested', 'approved', 'rejected', 'posted', 'voided', 'failed'));

-- 4. A voice/video consultation whose call never carried media, or a chat the consultant did not
--    answer within its first minute, is not owed: at its end every charged minute is reversed
--    and the receipt says why. Signalling reports the first media (media_started_at).
ALTER TABLE consultations ADD COLUMN media_started_at timestamptz;
ALTER TABLE consultations ADD COLUMN unserved text
    CHECK (unserved IN ('no_media', 'unanswered'));
ALTER TABLE consultations ADD COLUMN auto_refunded_paise bigint NOT NULL DEFAULT 0
    CHECK (auto_refunded_paise >= 0);
