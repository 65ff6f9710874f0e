DROP TRIGGER IF EXISTS journey_fix_feedback_insert ON feedback
-- next statement
DROP TRIGGER IF EXISTS journey_fix_feedback_update ON feedback
-- next statement
DROP TRIGGER IF EXISTS journey_fix_feedback_delete ON feedback
-- next statement
DROP TRIGGER IF EXISTS journey_fix_lifecycles_insert ON lifecycles
-- next statement
DROP TRIGGER IF EXISTS journey_fix_lifecycles_update ON lifecycles
-- next statement
DROP TRIGGER IF EXISTS journey_fix_lifecycles_delete ON lifecycles
-- next statement
DROP FUNCTION IF EXISTS journey_fix_feedback_apply()
-- next statement
DROP FUNCTION IF EXISTS journey_fix_lifecycles_apply()
-- next statement
DROP FUNCTION IF EXISTS journey_fix_refresh(integer[], integer[])
