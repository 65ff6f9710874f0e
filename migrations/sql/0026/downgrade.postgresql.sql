DROP TRIGGER IF EXISTS lifecycle_loyalty_lifecycles_insert ON lifecycles
-- next statement
DROP TRIGGER IF EXISTS lifecycle_loyalty_lifecycles_update ON lifecycles
-- next statement
DROP TRIGGER IF EXISTS lifecycle_loyalty_lifecycles_delete ON lifecycles
-- next statement
DROP TRIGGER IF EXISTS lifecycle_loyalty_feedback ON feedback
-- next statement
DROP TRIGGER IF EXISTS lifecycle_loyalty_escalations ON escalations
-- next statement
DROP TRIGGER IF EXISTS lifecycle_loyalty_conversations ON conversations
-- next statement
DROP TRIGGER IF EXISTS lifecycle_loyalty_customers ON customers
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_lifecycles()
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_feedback()
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_escalations()
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_conversations()
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_customers()
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_refresh(integer[])
