DELETE FROM lifecycle_loyalty
-- next statement
INSERT INTO lifecycle_loyalty (lifecycle_id, customer_id, opened_at, closed_at, purchase, period, renewed, stage, source, seq, prev_opened_at, next_opened_at, next2_opened_at, next3_opened_at, first_opened_at, escalated, csat_n, csat_sum, nps_n, nps_sum) 
WITH l AS (
  SELECT l.id, l.customer_id, l.opened_at, l.closed_at, l.order_id, l.subscription_id,
         CAST(l.stage AS text) AS stage,
         (l.order_id IS NOT NULL OR l.subscription_id IS NOT NULL) AS purchase,
         (l.kind = 'subscription_period') AS period,
         COALESCE(CAST(l.acquisition_channel AS text), CAST(c.acquisition_source AS text),
                  'unknown') AS source
  FROM lifecycles l JOIN customers c ON c.id = l.customer_id
  WHERE TRUE
), p AS (
  SELECT id, row_number() OVER w AS seq, lag(opened_at) OVER w AS prev_opened_at,
         lead(opened_at) OVER w AS next_opened_at, lead(opened_at, 2) OVER w AS next2_opened_at,
         lead(opened_at, 3) OVER w AS next3_opened_at,
         min(opened_at) OVER (PARTITION BY customer_id) AS first_opened_at
  FROM l WHERE purchase
  WINDOW w AS (PARTITION BY customer_id ORDER BY opened_at, id)
), r AS (
  SELECT id, lead(id) OVER (PARTITION BY subscription_id ORDER BY opened_at, id) AS next_id
  FROM l WHERE period
), sc AS (
  SELECT f.lifecycle_id,
         count(*) FILTER (WHERE f.kind = 'csat') AS csat_n,
         COALESCE(sum(f.score) FILTER (WHERE f.kind = 'csat'), 0) AS csat_sum,
         count(*) FILTER (WHERE f.kind = 'nps') AS nps_n,
         COALESCE(sum(f.score) FILTER (WHERE f.kind = 'nps'), 0) AS nps_sum
  FROM feedback f JOIN lifecycles l ON l.id = f.lifecycle_id
  WHERE TRUE AND f.kind IN ('csat', 'nps') AND f.score IS NOT NULL
  GROUP BY f.lifecycle_id
), esc AS (
  SELECT f.lifecycle_id AS id FROM escalations e JOIN feedback f ON f.id = e.feedback_id
  JOIN lifecycles l ON l.id = f.lifecycle_id
  WHERE TRUE
  UNION
  SELECT l.id FROM lifecycles l JOIN conversations v ON v.order_id = l.order_id
  JOIN escalations e ON e.conversation_id = v.id
  WHERE TRUE
  UNION
  SELECT l.id FROM lifecycles l JOIN escalations e ON e.customer_id = l.customer_id
  LEFT JOIN conversations v ON v.id = e.conversation_id
  WHERE TRUE AND e.feedback_id IS NULL AND v.order_id IS NULL
    AND e.created_at >= l.opened_at AND (l.closed_at IS NULL OR e.created_at < l.closed_at)
)
SELECT l.id AS lifecycle_id, l.customer_id, l.opened_at, l.closed_at, l.purchase, l.period,
       (r.next_id IS NOT NULL) AS renewed, l.stage, l.source, CAST(p.seq AS integer) AS seq,
       p.prev_opened_at, p.next_opened_at, p.next2_opened_at, p.next3_opened_at,
       p.first_opened_at, (esc.id IS NOT NULL) AS escalated,
       CAST(COALESCE(sc.csat_n, 0) AS integer) AS csat_n,
       CAST(COALESCE(sc.csat_sum, 0) AS integer) AS csat_sum,
       CAST(COALESCE(sc.nps_n, 0) AS integer) AS nps_n,
       CAST(COALESCE(sc.nps_sum, 0) AS integer) AS nps_sum
FROM l LEFT JOIN p ON p.id = l.id LEFT JOIN r ON r.id = l.id
LEFT JOIN sc ON sc.lifecycle_id = l.id LEFT JOIN esc ON esc.id = l.id
-- next statement
CREATE OR REPLACE FUNCTION lifecycle_loyalty_refresh(customers integer[]) RETURNS void AS $$
DECLARE cs integer[];
BEGIN
  SELECT array_agg(x ORDER BY x) INTO cs FROM (
    SELECT unnest(customers) AS x
    UNION SELECT o.customer_id FROM lifecycles m
      JOIN lifecycles o ON o.subscription_id = m.subscription_id
     WHERE m.customer_id IN (SELECT unnest(customers)) AND m.subscription_id IS NOT NULL
  ) AS t WHERE x IS NOT NULL;
  IF cs IS NULL THEN RETURN; END IF;
  IF cardinality(cs) > 1000 THEN
    LOCK TABLE lifecycle_loyalty IN EXCLUSIVE MODE;
  ELSE
    LOCK TABLE lifecycle_loyalty IN ROW EXCLUSIVE MODE;
    PERFORM pg_advisory_xact_lock(6007, x) FROM unnest(cs) AS x ORDER BY x;
  END IF;
  DELETE FROM lifecycle_loyalty s WHERE s.customer_id IN (SELECT x FROM unnest(cs) AS x)
    AND NOT EXISTS (SELECT 1 FROM lifecycles l WHERE l.id = s.lifecycle_id);
  INSERT INTO lifecycle_loyalty (lifecycle_id, customer_id, opened_at, closed_at, purchase, period, renewed, stage, source, seq, prev_opened_at, next_opened_at, next2_opened_at, next3_opened_at, first_opened_at, escalated, csat_n, csat_sum, nps_n, nps_sum)
  
WITH l AS (
  SELECT l.id, l.customer_id, l.opened_at, l.closed_at, l.order_id, l.subscription_id,
         CAST(l.stage AS text) AS stage,
         (l.order_id IS NOT NULL OR l.subscription_id IS NOT NULL) AS purchase,
         (l.kind = 'subscription_period') AS period,
         COALESCE(CAST(l.acquisition_channel AS text), CAST(c.acquisition_source AS text),
                  'unknown') AS source
  FROM lifecycles l JOIN customers c ON c.id = l.customer_id
  WHERE l.customer_id IN (SELECT x FROM unnest(cs) AS x)
), p AS (
  SELECT id, row_number() OVER w AS seq, lag(opened_at) OVER w AS prev_opened_at,
         lead(opened_at) OVER w AS next_opened_at, lead(opened_at, 2) OVER w AS next2_opened_at,
         lead(opened_at, 3) OVER w AS next3_opened_at,
         min(opened_at) OVER (PARTITION BY customer_id) AS first_opened_at
  FROM l WHERE purchase
  WINDOW w AS (PARTITION BY customer_id ORDER BY opened_at, id)
), r AS (
  SELECT id, lead(id) OVER (PARTITION BY subscription_id ORDER BY opened_at, id) AS next_id
  FROM l WHERE period
), sc AS (
  SELECT f.lifecycle_id,
         count(*) FILTER (WHERE f.kind = 'csat') AS csat_n,
         COALESCE(sum(f.score) FILTER (WHERE f.kind = 'csat'), 0) AS csat_sum,
         count(*) FILTER (WHERE f.kind = 'nps') AS nps_n,
         COALESCE(sum(f.score) FILTER (WHERE f.kind = 'nps'), 0) AS nps_sum
  FROM feedback f JOIN lifecycles l ON l.id = f.lifecycle_id
  WHERE l.customer_id IN (SELECT x FROM unnest(cs) AS x) AND f.kind IN ('csat', 'nps') AND f.score IS NOT NULL
  GROUP BY f.lifecycle_id
), esc AS (
  SELECT f.lifecycle_id AS id FROM escalations e JOIN feedback f ON f.id = e.feedback_id
  JOIN lifecycles l ON l.id = f.lifecycle_id
  WHERE l.customer_id IN (SELECT x FROM unnest(cs) AS x)
  UNION
  SELECT l.id FROM lifecycles l JOIN conversations v ON v.order_id = l.order_id
  JOIN escalations e ON e.conversation_id = v.id
  WHERE l.customer_id IN (SELECT x FROM unnest(cs) AS x)
  UNION
  SELECT l.id FROM lifecycles l JOIN escalations e ON e.customer_id = l.customer_id
  LEFT JOIN conversations v ON v.id = e.conversation_id
  WHERE l.customer_id IN (SELECT x FROM unnest(cs) AS x) AND e.feedback_id IS NULL AND v.order_id IS NULL
    AND e.created_at >= l.opened_at AND (l.closed_at IS NULL OR e.created_at < l.closed_at)
)
SELECT l.id AS lifecycle_id, l.customer_id, l.opened_at, l.closed_at, l.purchase, l.period,
       (r.next_id IS NOT NULL) AS renewed, l.stage, l.source, CAST(p.seq AS integer) AS seq,
       p.prev_opened_at, p.next_opened_at, p.next2_opened_at, p.next3_opened_at,
       p.first_opened_at, (esc.id IS NOT NULL) AS escalated,
       CAST(COALESCE(sc.csat_n, 0) AS integer) AS csat_n,
       CAST(COALESCE(sc.csat_sum, 0) AS integer) AS csat_sum,
       CAST(COALESCE(sc.nps_n, 0) AS integer) AS nps_n,
       CAST(COALESCE(sc.nps_sum, 0) AS integer) AS nps_sum
FROM l LEFT JOIN p ON p.id = l.id LEFT JOIN r ON r.id = l.id
LEFT JOIN sc ON sc.lifecycle_id = l.id LEFT JOIN esc ON esc.id = l.id
  ON CONFLICT (lifecycle_id) DO UPDATE SET (customer_id, opened_at, closed_at, purchase, period, renewed, stage, source, seq, prev_opened_at, next_opened_at, next2_opened_at, next3_opened_at, first_opened_at, escalated) = (excluded.customer_id, excluded.opened_at, excluded.closed_at, excluded.purchase, excluded.period, excluded.renewed, excluded.stage, excluded.source, excluded.seq, excluded.prev_opened_at, excluded.next_opened_at, excluded.next2_opened_at, excluded.next3_opened_at, excluded.first_opened_at, excluded.escalated)
  WHERE (lifecycle_loyalty.customer_id, lifecycle_loyalty.opened_at, lifecycle_loyalty.closed_at, lifecycle_loyalty.purchase, lifecycle_loyalty.period, lifecycle_loyalty.renewed, lifecycle_loyalty.stage, lifecycle_loyalty.source, lifecycle_loyalty.seq, lifecycle_loyalty.prev_opened_at, lifecycle_loyalty.next_opened_at, lifecycle_loyalty.next2_opened_at, lifecycle_loyalty.next3_opened_at, lifecycle_loyalty.first_opened_at, lifecycle_loyalty.escalated) IS DISTINCT FROM (excluded.customer_id, excluded.opened_at, excluded.closed_at, excluded.purchase, excluded.period, excluded.renewed, excluded.stage, excluded.source, excluded.seq, excluded.prev_opened_at, excluded.next_opened_at, excluded.next2_opened_at, excluded.next3_opened_at, excluded.first_opened_at, excluded.escalated);
END $$ LANGUAGE plpgsql
-- next statement
CREATE OR REPLACE FUNCTION lifecycle_loyalty_lifecycles() RETURNS trigger AS $$
BEGIN
  IF current_setting('rollup.lifecycles_deferred', true) = 'on' THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN PERFORM lifecycle_loyalty_refresh(ARRAY(SELECT DISTINCT customer_id FROM (SELECT customer_id FROM new_rows) AS t)); END IF;
  IF TG_OP = 'UPDATE' THEN PERFORM lifecycle_loyalty_refresh(ARRAY(SELECT DISTINCT customer_id FROM (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.closed_at, o.order_id, o.subscription_id, o.stage, o.kind, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.closed_at, n.order_id, n.subscription_id, n.stage, n.kind, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id) AS t)); END IF;
  IF TG_OP = 'DELETE' THEN PERFORM lifecycle_loyalty_refresh(ARRAY(SELECT DISTINCT customer_id FROM (SELECT customer_id FROM old_rows) AS t)); END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE TRIGGER lifecycle_loyalty_lifecycles_insert AFTER INSERT ON lifecycles REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_loyalty_lifecycles()
-- next statement
CREATE TRIGGER lifecycle_loyalty_lifecycles_update AFTER UPDATE ON lifecycles REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_loyalty_lifecycles()
-- next statement
CREATE TRIGGER lifecycle_loyalty_lifecycles_delete AFTER DELETE ON lifecycles REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_loyalty_lifecycles()
-- next statement
CREATE OR REPLACE FUNCTION lifecycle_loyalty_feedback() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' AND current_setting('rollup.deferred', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND (OLD.lifecycle_id, OLD.kind, OLD.score)
     IS NOT DISTINCT FROM (NEW.lifecycle_id, NEW.kind, NEW.score) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.lifecycle_id IS NOT NULL AND OLD.kind IN ('csat', 'nps') AND OLD.score IS NOT NULL THEN
    UPDATE lifecycle_loyalty SET csat_n = csat_n - CASE WHEN OLD.kind = 'csat' THEN 1 ELSE 0 END, csat_sum = csat_sum - CASE WHEN OLD.kind = 'csat' THEN OLD.score ELSE 0 END, nps_n = nps_n - CASE WHEN OLD.kind = 'nps' THEN 1 ELSE 0 END, nps_sum = nps_sum - CASE WHEN OLD.kind = 'nps' THEN OLD.score ELSE 0 END WHERE lifecycle_id = OLD.lifecycle_id;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.lifecycle_id IS NOT NULL AND NEW.kind IN ('csat', 'nps') AND NEW.score IS NOT NULL THEN
    UPDATE lifecycle_loyalty SET csat_n = csat_n + CASE WHEN NEW.kind = 'csat' THEN 1 ELSE 0 END, csat_sum = csat_sum + CASE WHEN NEW.kind = 'csat' THEN NEW.score ELSE 0 END, nps_n = nps_n + CASE WHEN NEW.kind = 'nps' THEN 1 ELSE 0 END, nps_sum = nps_sum + CASE WHEN NEW.kind = 'nps' THEN NEW.score ELSE 0 END WHERE lifecycle_id = NEW.lifecycle_id;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.lifecycle_id IS DISTINCT FROM NEW.lifecycle_id
     AND EXISTS (SELECT 1 FROM escalations WHERE feedback_id = NEW.id) THEN
    PERFORM lifecycle_loyalty_refresh(ARRAY(SELECT customer_id FROM lifecycles
      WHERE id IN (OLD.lifecycle_id, NEW.lifecycle_id)));
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE TRIGGER lifecycle_loyalty_feedback AFTER INSERT OR DELETE OR UPDATE OF lifecycle_id, kind, score ON feedback FOR EACH ROW EXECUTE FUNCTION lifecycle_loyalty_feedback()
-- next statement
CREATE OR REPLACE FUNCTION lifecycle_loyalty_escalations() RETURNS trigger AS $$
DECLARE o escalations; n escalations;
BEGIN
  IF TG_OP <> 'INSERT' THEN o := OLD; END IF;
  IF TG_OP <> 'DELETE' THEN n := NEW; END IF;
  PERFORM lifecycle_loyalty_refresh(ARRAY(
    SELECT x FROM (VALUES (o.customer_id), (n.customer_id)) AS v(x)
    UNION SELECT l.customer_id FROM feedback f JOIN lifecycles l ON l.id = f.lifecycle_id
     WHERE f.id IN (o.feedback_id, n.feedback_id)
    UNION SELECT l.customer_id FROM conversations v JOIN lifecycles l
      ON l.order_id = v.order_id WHERE v.id IN (o.conversation_id, n.conversation_id)));
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE TRIGGER lifecycle_loyalty_escalations AFTER INSERT OR DELETE OR UPDATE OF customer_id, feedback_id, conversation_id, created_at ON escalations FOR EACH ROW EXECUTE FUNCTION lifecycle_loyalty_escalations()
-- next statement
CREATE OR REPLACE FUNCTION lifecycle_loyalty_conversations() RETURNS trigger AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM escalations WHERE conversation_id = NEW.id) THEN
    PERFORM lifecycle_loyalty_refresh(ARRAY(
      SELECT customer_id FROM lifecycles WHERE order_id IN (OLD.order_id, NEW.order_id)
      UNION SELECT customer_id FROM escalations WHERE conversation_id = NEW.id));
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE TRIGGER lifecycle_loyalty_conversations AFTER UPDATE OF order_id ON conversations FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id) EXECUTE FUNCTION lifecycle_loyalty_conversations()
-- next statement
CREATE OR REPLACE FUNCTION lifecycle_loyalty_customers() RETURNS trigger AS $$
BEGIN
  PERFORM lifecycle_loyalty_refresh(ARRAY[NEW.id]);
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE TRIGGER lifecycle_loyalty_customers AFTER UPDATE OF acquisition_source ON customers FOR EACH ROW WHEN (OLD.acquisition_source IS DISTINCT FROM NEW.acquisition_source) EXECUTE FUNCTION lifecycle_loyalty_customers()
