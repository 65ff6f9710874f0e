DELETE FROM journey_fix_daily
-- next statement
DELETE FROM journey_fix
-- next statement
INSERT INTO journey_fix (lifecycle_id, key, day, opened_at, returned, csat_n, csat_good, nps_n, nps_net) SELECT l.id AS lifecycle_id, k.key, CAST(timezone('UTC', l.opened_at) AS DATE) AS day, l.opened_at, CASE WHEN EXISTS (SELECT 1 FROM lifecycles n WHERE n.customer_id = l.customer_id AND n.opened_at > l.opened_at AND n.opened_at <= l.opened_at + interval '2160 hours' AND (n.order_id IS NOT NULL OR n.subscription_id IS NOT NULL)) THEN 1 ELSE 0 END AS returned, s.csat_n, s.csat_good, s.nps_n, s.nps_net FROM lifecycles l JOIN (SELECT f.lifecycle_id, SUM(CASE WHEN f.kind = 'csat' AND f.score IS NOT NULL THEN 1 ELSE 0 END) AS csat_n, SUM(CASE WHEN f.kind = 'csat' AND f.score >= 4 THEN 1 ELSE 0 END) AS csat_good, SUM(CASE WHEN f.kind = 'nps' AND f.score IS NOT NULL THEN 1 ELSE 0 END) AS nps_n, SUM(CASE WHEN f.kind = 'nps' AND f.score >= 9 THEN 1 WHEN f.kind = 'nps' AND f.score <= 6 THEN -1 ELSE 0 END) AS nps_net FROM feedback f WHERE f.lifecycle_id IS NOT NULL GROUP BY f.lifecycle_id) AS s ON s.lifecycle_id = l.id JOIN (SELECT f.lifecycle_id, 'all' AS key FROM feedback f WHERE f.lifecycle_id IS NOT NULL UNION SELECT f.lifecycle_id, 'stage:' || COALESCE(f.stage, 'unattributed') FROM feedback f WHERE f.lifecycle_id IS NOT NULL UNION SELECT f.lifecycle_id, 'cell:' || COALESCE(f.stage, 'unattributed') || ':' || f.channel FROM feedback f WHERE f.lifecycle_id IS NOT NULL UNION SELECT f.lifecycle_id, 'theme:' || COALESCE(f.stage, 'unattributed') || ':' || t.value FROM feedback f CROSS JOIN LATERAL json_array_elements_text(f.themes) AS t(value) WHERE f.lifecycle_id IS NOT NULL AND f.sentiment < -0.05) AS k ON k.lifecycle_id = l.id
-- next statement
INSERT INTO journey_fix_daily (day, key, journeys, returned, csat_n, csat_good, nps_n, nps_net) SELECT day, key, COUNT(*), SUM(returned), SUM(csat_n), SUM(csat_good), SUM(nps_n), SUM(nps_net) FROM journey_fix GROUP BY day, key
-- next statement
CREATE OR REPLACE FUNCTION journey_fix_refresh(journeys integer[], customers integer[]) RETURNS void AS $$
BEGIN
  IF cardinality(journeys) = 0 THEN RETURN; END IF;
  PERFORM pg_advisory_xact_lock(6021, c) FROM (SELECT DISTINCT c FROM unnest(customers) AS u(c) WHERE c IS NOT NULL ORDER BY c) AS o;
  INSERT INTO journey_fix_daily (day, key, journeys, returned, csat_n, csat_good, nps_n, nps_net) SELECT day, key, -COUNT(*), -SUM(returned), -SUM(csat_n), -SUM(csat_good), -SUM(nps_n), -SUM(nps_net) FROM journey_fix WHERE lifecycle_id IN (SELECT unnest(journeys)) GROUP BY day, key ORDER BY day, key ON CONFLICT (day, key) DO UPDATE SET journeys = journey_fix_daily.journeys + excluded.journeys, returned = journey_fix_daily.returned + excluded.returned, csat_n = journey_fix_daily.csat_n + excluded.csat_n, csat_good = journey_fix_daily.csat_good + excluded.csat_good, nps_n = journey_fix_daily.nps_n + excluded.nps_n, nps_net = journey_fix_daily.nps_net + excluded.nps_net;
  DELETE FROM journey_fix WHERE lifecycle_id IN (SELECT unnest(journeys));
  INSERT INTO journey_fix (lifecycle_id, key, day, opened_at, returned, csat_n, csat_good, nps_n, nps_net) SELECT l.id AS lifecycle_id, k.key, CAST(timezone('UTC', l.opened_at) AS DATE) AS day, l.opened_at, CASE WHEN EXISTS (SELECT 1 FROM lifecycles n WHERE n.customer_id = l.customer_id AND n.opened_at > l.opened_at AND n.opened_at <= l.opened_at + interval '2160 hours' AND (n.order_id IS NOT NULL OR n.subscription_id IS NOT NULL)) THEN 1 ELSE 0 END AS returned, s.csat_n, s.csat_good, s.nps_n, s.nps_net FROM lifecycles l JOIN (SELECT f.lifecycle_id, SUM(CASE WHEN f.kind = 'csat' AND f.score IS NOT NULL THEN 1 ELSE 0 END) AS csat_n, SUM(CASE WHEN f.kind = 'csat' AND f.score >= 4 THEN 1 ELSE 0 END) AS csat_good, SUM(CASE WHEN f.kind = 'nps' AND f.score IS NOT NULL THEN 1 ELSE 0 END) AS nps_n, SUM(CASE WHEN f.kind = 'nps' AND f.score >= 9 THEN 1 WHEN f.kind = 'nps' AND f.score <= 6 THEN -1 ELSE 0 END) AS nps_net FROM feedback f WHERE f.lifecycle_id IN (SELECT unnest(journeys)) GROUP BY f.lifecycle_id) AS s ON s.lifecycle_id = l.id JOIN (SELECT f.lifecycle_id, 'all' AS key FROM feedback f WHERE f.lifecycle_id IN (SELECT unnest(journeys)) UNION SELECT f.lifecycle_id, 'stage:' || COALESCE(f.stage, 'unattributed') FROM feedback f WHERE f.lifecycle_id IN (SELECT unnest(journeys)) UNION SELECT f.lifecycle_id, 'cell:' || COALESCE(f.stage, 'unattributed') || ':' || f.channel FROM feedback f WHERE f.lifecycle_id IN (SELECT unnest(journeys)) UNION SELECT f.lifecycle_id, 'theme:' || COALESCE(f.stage, 'unattributed') || ':' || t.value FROM feedback f CROSS JOIN LATERAL json_array_elements_text(f.themes) AS t(value) WHERE f.lifecycle_id IN (SELECT unnest(journeys)) AND f.sentiment < -0.05) AS k ON k.lifecycle_id = l.id;
  INSERT INTO journey_fix_daily (day, key, journeys, returned, csat_n, csat_good, nps_n, nps_net) SELECT day, key, COUNT(*), SUM(returned), SUM(csat_n), SUM(csat_good), SUM(nps_n), SUM(nps_net) FROM journey_fix WHERE lifecycle_id IN (SELECT unnest(journeys)) GROUP BY day, key ORDER BY day, key ON CONFLICT (day, key) DO UPDATE SET journeys = journey_fix_daily.journeys + excluded.journeys, returned = journey_fix_daily.returned + excluded.returned, csat_n = journey_fix_daily.csat_n + excluded.csat_n, csat_good = journey_fix_daily.csat_good + excluded.csat_good, nps_n = journey_fix_daily.nps_n + excluded.nps_n, nps_net = journey_fix_daily.nps_net + excluded.nps_net;
END $$ LANGUAGE plpgsql
-- next statement
CREATE OR REPLACE FUNCTION journey_fix_feedback_apply() RETURNS trigger AS $$
DECLARE journeys integer[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    journeys := ARRAY(SELECT DISTINCT j FROM (SELECT lifecycle_id FROM new_rows) AS s(j) WHERE j IS NOT NULL);
    PERFORM journey_fix_refresh(journeys, ARRAY(SELECT customer_id FROM lifecycles WHERE id = ANY(journeys)));
  END IF;
  IF TG_OP = 'DELETE' THEN
    journeys := ARRAY(SELECT DISTINCT j FROM (SELECT lifecycle_id FROM old_rows) AS s(j) WHERE j IS NOT NULL);
    PERFORM journey_fix_refresh(journeys, ARRAY(SELECT customer_id FROM lifecycles WHERE id = ANY(journeys)));
  END IF;
  IF TG_OP = 'UPDATE' THEN
    journeys := ARRAY(SELECT DISTINCT j FROM (SELECT lifecycle_id FROM (SELECT o.lifecycle_id, n.lifecycle_id AS other FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.lifecycle_id, o.stage, o.channel, o.kind, o.score, o.sentiment, CAST(o.themes AS text)) IS DISTINCT FROM (n.lifecycle_id, n.stage, n.channel, n.kind, n.score, n.sentiment, CAST(n.themes AS text))) AS c UNION SELECT other FROM (SELECT o.lifecycle_id, n.lifecycle_id AS other FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.lifecycle_id, o.stage, o.channel, o.kind, o.score, o.sentiment, CAST(o.themes AS text)) IS DISTINCT FROM (n.lifecycle_id, n.stage, n.channel, n.kind, n.score, n.sentiment, CAST(n.themes AS text))) AS c) AS s(j) WHERE j IS NOT NULL);
    PERFORM journey_fix_refresh(journeys, ARRAY(SELECT customer_id FROM lifecycles WHERE id = ANY(journeys)));
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE OR REPLACE FUNCTION journey_fix_lifecycles_apply() RETURNS trigger AS $$
DECLARE customers integer[];
BEGIN
  IF current_setting('rollup.lifecycles_deferred', true) = 'on' THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    customers := ARRAY(SELECT DISTINCT c FROM (SELECT customer_id FROM new_rows) AS s(c));
    PERFORM journey_fix_refresh(ARRAY(SELECT id FROM lifecycles WHERE customer_id = ANY(customers)), customers);
  END IF;
  IF TG_OP = 'DELETE' THEN
    customers := ARRAY(SELECT DISTINCT c FROM (SELECT customer_id FROM old_rows) AS s(c));
    PERFORM journey_fix_refresh(ARRAY(SELECT id FROM lifecycles WHERE customer_id = ANY(customers) UNION SELECT id FROM old_rows), customers);
  END IF;
  IF TG_OP = 'UPDATE' THEN
    customers := ARRAY(SELECT DISTINCT c FROM (SELECT customer_id FROM (SELECT o.customer_id, n.customer_id AS other FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.order_id, o.subscription_id) IS DISTINCT FROM (n.customer_id, n.opened_at, n.order_id, n.subscription_id)) AS c UNION SELECT other FROM (SELECT o.customer_id, n.customer_id AS other FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.order_id, o.subscription_id) IS DISTINCT FROM (n.customer_id, n.opened_at, n.order_id, n.subscription_id)) AS c) AS s(c));
    PERFORM journey_fix_refresh(ARRAY(SELECT id FROM lifecycles WHERE customer_id = ANY(customers)), customers);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE TRIGGER journey_fix_feedback_insert AFTER INSERT ON feedback REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION journey_fix_feedback_apply()
-- next statement
CREATE TRIGGER journey_fix_feedback_update AFTER UPDATE ON feedback REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION journey_fix_feedback_apply()
-- next statement
CREATE TRIGGER journey_fix_feedback_delete AFTER DELETE ON feedback REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION journey_fix_feedback_apply()
-- next statement
CREATE TRIGGER journey_fix_lifecycles_insert AFTER INSERT ON lifecycles REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION journey_fix_lifecycles_apply()
-- next statement
CREATE TRIGGER journey_fix_lifecycles_update AFTER UPDATE ON lifecycles REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION journey_fix_lifecycles_apply()
-- next statement
CREATE TRIGGER journey_fix_lifecycles_delete AFTER DELETE ON lifecycles REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION journey_fix_lifecycles_apply()
