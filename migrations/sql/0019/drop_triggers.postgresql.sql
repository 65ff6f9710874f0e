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
-- next statement
DROP TRIGGER IF EXISTS survey_dispatch_sources_trigger ON survey_dispatches
-- next statement
DROP FUNCTION IF EXISTS survey_dispatch_sources_apply()
-- next statement
DROP TRIGGER IF EXISTS feedback_monthly_groups_trigger ON feedback_daily_groups
-- next statement
DROP FUNCTION IF EXISTS feedback_monthly_groups_apply()
-- next statement
DROP TRIGGER IF EXISTS order_items_product_insert ON order_items
-- next statement
DROP TRIGGER IF EXISTS order_items_product_update ON order_items
-- next statement
DROP TRIGGER IF EXISTS order_items_product_delete ON order_items
-- next statement
DROP FUNCTION IF EXISTS order_items_product_apply()
-- next statement
DROP TRIGGER IF EXISTS lifecycles_source_trigger ON lifecycles
-- next statement
DROP FUNCTION IF EXISTS lifecycles_source_apply()
-- next statement
DROP TRIGGER IF EXISTS customers_source_trigger ON customers
-- next statement
DROP FUNCTION IF EXISTS customers_source_apply()
-- next statement
DROP TRIGGER IF EXISTS journey_links_insert ON lifecycles
-- next statement
DROP TRIGGER IF EXISTS journey_links_update ON lifecycles
-- next statement
DROP TRIGGER IF EXISTS journey_links_delete ON lifecycles
-- next statement
DROP FUNCTION IF EXISTS journey_links_apply()
