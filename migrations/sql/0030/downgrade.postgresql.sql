CREATE OR REPLACE FUNCTION journey_links_apply() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NOT EXISTS (SELECT customer_id FROM new_rows) THEN RETURN NULL; END IF;
    PERFORM pg_advisory_xact_lock(6006, customer_id)
      FROM (SELECT DISTINCT customer_id FROM (SELECT customer_id FROM new_rows) AS t ORDER BY 1) AS o;
    INSERT INTO journey_links (grain, m, a, b, key, n) SELECT grain, m, a, b, key, SUM(n) FROM (SELECT g.grain, g.m, g.a, g.b, k.key, 1 AS n
FROM (
  SELECT keyed.key, keyed.d,
         lag(keyed.d) OVER (PARTITION BY keyed.customer_id, keyed.key
                            ORDER BY keyed.opened_at, keyed.id) AS p
  FROM (
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date) AS d, 'reach:' || r.rank AS key
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT customer_id FROM new_rows)) AS s JOIN generate_series(0, 4) AS r(rank) ON r.rank <= CASE s.stage WHEN 'discovery' THEN 0 WHEN 'research' THEN 1 WHEN 'purchase' THEN 2 WHEN 'use' THEN 3 WHEN 'support' THEN 4 END
    UNION ALL
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date),
           'source:' || COALESCE(s.acquisition_channel, 'unknown')
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT customer_id FROM new_rows)) AS s
  ) AS keyed
) AS k
CROSS JOIN LATERAL (VALUES
  ('n', k.d, k.d, k.d),
  ('mm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('dm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), k.p, (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('md', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.d, (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1)),
  ('dd', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.p, k.d)
) AS g(grain, m, a, b)
WHERE g.grain = 'n' OR k.p IS NOT NULL
UNION ALL
SELECT g.grain, g.m, g.a, g.b, k.key, -1 AS n
FROM (
  SELECT keyed.key, keyed.d,
         lag(keyed.d) OVER (PARTITION BY keyed.customer_id, keyed.key
                            ORDER BY keyed.opened_at, keyed.id) AS p
  FROM (
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date) AS d, 'reach:' || r.rank AS key
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT customer_id FROM new_rows) AND id NOT IN (SELECT id FROM new_rows)) AS s JOIN generate_series(0, 4) AS r(rank) ON r.rank <= CASE s.stage WHEN 'discovery' THEN 0 WHEN 'research' THEN 1 WHEN 'purchase' THEN 2 WHEN 'use' THEN 3 WHEN 'support' THEN 4 END
    UNION ALL
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date),
           'source:' || COALESCE(s.acquisition_channel, 'unknown')
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT customer_id FROM new_rows) AND id NOT IN (SELECT id FROM new_rows)) AS s
  ) AS keyed
) AS k
CROSS JOIN LATERAL (VALUES
  ('n', k.d, k.d, k.d),
  ('mm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('dm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), k.p, (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('md', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.d, (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1)),
  ('dd', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.p, k.d)
) AS g(grain, m, a, b)
WHERE g.grain = 'n' OR k.p IS NOT NULL) AS c GROUP BY grain, m, a, b, key HAVING SUM(n) <> 0 ORDER BY grain, m, a, b, key ON CONFLICT (grain, m, a, b, key) DO UPDATE SET n = journey_links.n + excluded.n;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NOT EXISTS (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.stage, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.stage, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id) THEN RETURN NULL; END IF;
    PERFORM pg_advisory_xact_lock(6006, customer_id)
      FROM (SELECT DISTINCT customer_id FROM (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.stage, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.stage, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id) AS t ORDER BY 1) AS o;
    INSERT INTO journey_links (grain, m, a, b, key, n) SELECT grain, m, a, b, key, SUM(n) FROM (SELECT g.grain, g.m, g.a, g.b, k.key, 1 AS n
FROM (
  SELECT keyed.key, keyed.d,
         lag(keyed.d) OVER (PARTITION BY keyed.customer_id, keyed.key
                            ORDER BY keyed.opened_at, keyed.id) AS p
  FROM (
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date) AS d, 'reach:' || r.rank AS key
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.stage, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.stage, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id)) AS s JOIN generate_series(0, 4) AS r(rank) ON r.rank <= CASE s.stage WHEN 'discovery' THEN 0 WHEN 'research' THEN 1 WHEN 'purchase' THEN 2 WHEN 'use' THEN 3 WHEN 'support' THEN 4 END
    UNION ALL
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date),
           'source:' || COALESCE(s.acquisition_channel, 'unknown')
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.stage, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.stage, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id)) AS s
  ) AS keyed
) AS k
CROSS JOIN LATERAL (VALUES
  ('n', k.d, k.d, k.d),
  ('mm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('dm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), k.p, (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('md', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.d, (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1)),
  ('dd', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.p, k.d)
) AS g(grain, m, a, b)
WHERE g.grain = 'n' OR k.p IS NOT NULL
UNION ALL
SELECT g.grain, g.m, g.a, g.b, k.key, -1 AS n
FROM (
  SELECT keyed.key, keyed.d,
         lag(keyed.d) OVER (PARTITION BY keyed.customer_id, keyed.key
                            ORDER BY keyed.opened_at, keyed.id) AS p
  FROM (
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date) AS d, 'reach:' || r.rank AS key
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.stage, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.stage, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id) AND id NOT IN (SELECT id FROM new_rows) UNION ALL SELECT id, customer_id, opened_at, stage, acquisition_channel FROM old_rows WHERE customer_id IN (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.stage, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.stage, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id)) AS s JOIN generate_series(0, 4) AS r(rank) ON r.rank <= CASE s.stage WHEN 'discovery' THEN 0 WHEN 'research' THEN 1 WHEN 'purchase' THEN 2 WHEN 'use' THEN 3 WHEN 'support' THEN 4 END
    UNION ALL
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date),
           'source:' || COALESCE(s.acquisition_channel, 'unknown')
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.stage, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.stage, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id) AND id NOT IN (SELECT id FROM new_rows) UNION ALL SELECT id, customer_id, opened_at, stage, acquisition_channel FROM old_rows WHERE customer_id IN (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.stage, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.stage, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id)) AS s
  ) AS keyed
) AS k
CROSS JOIN LATERAL (VALUES
  ('n', k.d, k.d, k.d),
  ('mm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('dm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), k.p, (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('md', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.d, (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1)),
  ('dd', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.p, k.d)
) AS g(grain, m, a, b)
WHERE g.grain = 'n' OR k.p IS NOT NULL) AS c GROUP BY grain, m, a, b, key HAVING SUM(n) <> 0 ORDER BY grain, m, a, b, key ON CONFLICT (grain, m, a, b, key) DO UPDATE SET n = journey_links.n + excluded.n;
  END IF;
  IF TG_OP = 'DELETE' THEN
    IF NOT EXISTS (SELECT customer_id FROM old_rows) THEN RETURN NULL; END IF;
    PERFORM pg_advisory_xact_lock(6006, customer_id)
      FROM (SELECT DISTINCT customer_id FROM (SELECT customer_id FROM old_rows) AS t ORDER BY 1) AS o;
    INSERT INTO journey_links (grain, m, a, b, key, n) SELECT grain, m, a, b, key, SUM(n) FROM (SELECT g.grain, g.m, g.a, g.b, k.key, 1 AS n
FROM (
  SELECT keyed.key, keyed.d,
         lag(keyed.d) OVER (PARTITION BY keyed.customer_id, keyed.key
                            ORDER BY keyed.opened_at, keyed.id) AS p
  FROM (
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date) AS d, 'reach:' || r.rank AS key
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT customer_id FROM old_rows)) AS s JOIN generate_series(0, 4) AS r(rank) ON r.rank <= CASE s.stage WHEN 'discovery' THEN 0 WHEN 'research' THEN 1 WHEN 'purchase' THEN 2 WHEN 'use' THEN 3 WHEN 'support' THEN 4 END
    UNION ALL
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date),
           'source:' || COALESCE(s.acquisition_channel, 'unknown')
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT customer_id FROM old_rows)) AS s
  ) AS keyed
) AS k
CROSS JOIN LATERAL (VALUES
  ('n', k.d, k.d, k.d),
  ('mm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('dm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), k.p, (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('md', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.d, (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1)),
  ('dd', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.p, k.d)
) AS g(grain, m, a, b)
WHERE g.grain = 'n' OR k.p IS NOT NULL
UNION ALL
SELECT g.grain, g.m, g.a, g.b, k.key, -1 AS n
FROM (
  SELECT keyed.key, keyed.d,
         lag(keyed.d) OVER (PARTITION BY keyed.customer_id, keyed.key
                            ORDER BY keyed.opened_at, keyed.id) AS p
  FROM (
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date) AS d, 'reach:' || r.rank AS key
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT customer_id FROM old_rows) UNION ALL SELECT id, customer_id, opened_at, stage, acquisition_channel FROM old_rows WHERE customer_id IN (SELECT customer_id FROM old_rows)) AS s JOIN generate_series(0, 4) AS r(rank) ON r.rank <= CASE s.stage WHEN 'discovery' THEN 0 WHEN 'research' THEN 1 WHEN 'purchase' THEN 2 WHEN 'use' THEN 3 WHEN 'support' THEN 4 END
    UNION ALL
    SELECT s.customer_id, s.id, s.opened_at, CAST(timezone('UTC', s.opened_at) AS date),
           'source:' || COALESCE(s.acquisition_channel, 'unknown')
    FROM (SELECT id, customer_id, opened_at, stage, acquisition_channel FROM lifecycles WHERE customer_id IN (SELECT customer_id FROM old_rows) UNION ALL SELECT id, customer_id, opened_at, stage, acquisition_channel FROM old_rows WHERE customer_id IN (SELECT customer_id FROM old_rows)) AS s
  ) AS keyed
) AS k
CROSS JOIN LATERAL (VALUES
  ('n', k.d, k.d, k.d),
  ('mm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('dm', (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1), k.p, (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1)),
  ('md', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.d, (k.p - CAST(EXTRACT(DAY FROM k.p) AS integer) + 1)),
  ('dd', (k.d - CAST(EXTRACT(DAY FROM k.d) AS integer) + 1), k.p, k.d)
) AS g(grain, m, a, b)
WHERE g.grain = 'n' OR k.p IS NOT NULL) AS c GROUP BY grain, m, a, b, key HAVING SUM(n) <> 0 ORDER BY grain, m, a, b, key ON CONFLICT (grain, m, a, b, key) DO UPDATE SET n = journey_links.n + excluded.n;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE OR REPLACE FUNCTION lifecycle_loyalty_lifecycles() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN PERFORM lifecycle_loyalty_refresh(ARRAY(SELECT DISTINCT customer_id FROM (SELECT customer_id FROM new_rows) AS t)); END IF;
  IF TG_OP = 'UPDATE' THEN PERFORM lifecycle_loyalty_refresh(ARRAY(SELECT DISTINCT customer_id FROM (SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o.customer_id, o.opened_at, o.closed_at, o.order_id, o.subscription_id, o.stage, o.kind, o.acquisition_channel) IS DISTINCT FROM (n.customer_id, n.opened_at, n.closed_at, n.order_id, n.subscription_id, n.stage, n.kind, n.acquisition_channel) UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.customer_id <> n.customer_id) AS t)); END IF;
  IF TG_OP = 'DELETE' THEN PERFORM lifecycle_loyalty_refresh(ARRAY(SELECT DISTINCT customer_id FROM (SELECT customer_id FROM old_rows) AS t)); END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE OR REPLACE FUNCTION journey_fix_lifecycles_apply() RETURNS trigger AS $$
DECLARE customers integer[];
BEGIN
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
