DROP TRIGGER IF EXISTS lifecycle_loyalty_monthly_insert ON lifecycle_loyalty
-- next statement
DROP TRIGGER IF EXISTS lifecycle_loyalty_monthly_update ON lifecycle_loyalty
-- next statement
DROP TRIGGER IF EXISTS lifecycle_loyalty_monthly_delete ON lifecycle_loyalty
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_monthly_apply()
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_monthly_compact(smallint[], date[], smallint[], smallint[], smallint[], varchar(32)[], boolean[])
-- next statement
DROP AGGREGATE IF EXISTS lifecycle_loyalty_monthly_sum(integer[])
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_monthly_add(integer[], integer[])
-- next statement
DROP FUNCTION IF EXISTS lifecycle_loyalty_monthly_cum(integer[], integer[])
