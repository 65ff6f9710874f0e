DROP TRIGGER IF EXISTS survey_dispatch_sources_insert
-- next statement
DROP TRIGGER IF EXISTS survey_dispatch_sources_delete
-- next statement
DROP TRIGGER IF EXISTS survey_dispatch_sources_update_old
-- next statement
DROP TRIGGER IF EXISTS survey_dispatch_sources_update_new
-- next statement
DROP TRIGGER IF EXISTS feedback_monthly_groups_insert
-- next statement
DROP TRIGGER IF EXISTS feedback_monthly_groups_delete
-- next statement
DROP TRIGGER IF EXISTS feedback_monthly_groups_update_old
-- next statement
DROP TRIGGER IF EXISTS feedback_monthly_groups_update_new
-- next statement
DROP TRIGGER IF EXISTS order_items_product_insert
-- next statement
DROP TRIGGER IF EXISTS order_items_product_delete
-- next statement
DROP TRIGGER IF EXISTS order_items_product_update_old
-- next statement
DROP TRIGGER IF EXISTS order_items_product_update_new
-- next statement
DROP TRIGGER IF EXISTS lifecycles_source_update
-- next statement
DROP TRIGGER IF EXISTS customers_source_update
