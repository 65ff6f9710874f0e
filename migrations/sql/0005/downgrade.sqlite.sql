DROP TRIGGER IF EXISTS feedback_daily_insert
-- next statement
DROP TRIGGER IF EXISTS feedback_daily_delete
-- next statement
DROP TRIGGER IF EXISTS feedback_daily_update_old
-- next statement
DROP TRIGGER IF EXISTS feedback_daily_update_new
-- next statement
DROP TRIGGER IF EXISTS survey_dispatch_daily_insert
-- next statement
DROP TRIGGER IF EXISTS survey_dispatch_daily_delete
-- next statement
DROP TRIGGER IF EXISTS survey_dispatch_daily_update_old
-- next statement
DROP TRIGGER IF EXISTS survey_dispatch_daily_update_new
-- next statement
DROP TRIGGER IF EXISTS feedback_daily_groups_insert
-- next statement
DROP TRIGGER IF EXISTS feedback_daily_groups_delete
-- next statement
DROP TRIGGER IF EXISTS feedback_daily_groups_update_old
-- next statement
DROP TRIGGER IF EXISTS feedback_daily_groups_update_new
