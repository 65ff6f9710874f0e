DROP TRIGGER IF EXISTS journey_fix_feedback_insert
-- next statement
DROP TRIGGER IF EXISTS journey_fix_feedback_update
-- next statement
DROP TRIGGER IF EXISTS journey_fix_feedback_delete
-- next statement
DROP TRIGGER IF EXISTS journey_fix_lifecycles_insert
-- next statement
DROP TRIGGER IF EXISTS journey_fix_lifecycles_update
-- next statement
DROP TRIGGER IF EXISTS journey_fix_lifecycles_delete
