DROP TRIGGER IF EXISTS journey_fix_monthly_insert
-- next statement
DROP TRIGGER IF EXISTS journey_fix_monthly_delete
-- next statement
DROP TRIGGER IF EXISTS journey_fix_monthly_update_old
-- next statement
DROP TRIGGER IF EXISTS journey_fix_monthly_update_new
