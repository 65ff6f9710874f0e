DROP TRIGGER IF EXISTS journey_fix_monthly_trigger ON journey_fix_daily
-- next statement
DROP FUNCTION IF EXISTS journey_fix_monthly_apply()
