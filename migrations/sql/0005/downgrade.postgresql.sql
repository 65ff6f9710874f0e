DROP TRIGGER IF EXISTS feedback_daily_trigger ON feedback
-- next statement
DROP FUNCTION IF EXISTS feedback_daily_apply()
-- next statement
DROP TRIGGER IF EXISTS survey_dispatch_daily_trigger ON survey_dispatches
-- next statement
DROP FUNCTION IF EXISTS survey_dispatch_daily_apply()
-- next statement
DROP TRIGGER IF EXISTS feedback_daily_groups_trigger ON feedback
-- next statement
DROP FUNCTION IF EXISTS feedback_daily_groups_apply()
