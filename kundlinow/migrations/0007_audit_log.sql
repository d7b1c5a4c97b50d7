-- One audit log for every package (refunds, payouts, admin observers joining a consultation):
-- billing's table becomes the general one.
ALTER TABLE billing_audit_log RENAME TO audit_log;
ALTER INDEX billing_audit_log_subject RENAME TO audit_log_subject;
