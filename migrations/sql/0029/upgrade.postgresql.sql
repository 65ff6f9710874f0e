DELETE FROM journey_fix_monthly
-- next statement
INSERT INTO journey_fix_monthly (month, key, journeys, returned, csat_n, csat_good, nps_n, nps_net) SELECT (day - CAST(EXTRACT(DAY FROM day) AS integer) + 1), key, SUM(journeys), SUM(returned), SUM(csat_n), SUM(csat_good), SUM(nps_n), SUM(nps_net) FROM journey_fix_daily GROUP BY (day - CAST(EXTRACT(DAY FROM day) AS integer) + 1), key
-- next statement
CREATE OR REPLACE FUNCTION journey_fix_monthly_apply() RETURNS trigger AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN INSERT INTO journey_fix_monthly (month, key, journeys, returned, csat_n, csat_good, nps_n, nps_net) VALUES ((OLD.day - CAST(EXTRACT(DAY FROM OLD.day) AS integer) + 1), OLD.key, -OLD.journeys, -OLD.returned, -OLD.csat_n, -OLD.csat_good, -OLD.nps_n, -OLD.nps_net) ON CONFLICT (month, key) DO UPDATE SET journeys = journey_fix_monthly.journeys + excluded.journeys, returned = journey_fix_monthly.returned + excluded.returned, csat_n = journey_fix_monthly.csat_n + excluded.csat_n, csat_good = journey_fix_monthly.csat_good + excluded.csat_good, nps_n = journey_fix_monthly.nps_n + excluded.nps_n, nps_net = journey_fix_monthly.nps_net + excluded.nps_net; END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN INSERT INTO journey_fix_monthly (month, key, journeys, returned, csat_n, csat_good, nps_n, nps_net) VALUES ((NEW.day - CAST(EXTRACT(DAY FROM NEW.day) AS integer) + 1), NEW.key, NEW.journeys, NEW.returned, NEW.csat_n, NEW.csat_good, NEW.nps_n, NEW.nps_net) ON CONFLICT (month, key) DO UPDATE SET journeys = journey_fix_monthly.journeys + excluded.journeys, returned = journey_fix_monthly.returned + excluded.returned, csat_n = journey_fix_monthly.csat_n + excluded.csat_n, csat_good = journey_fix_monthly.csat_good + excluded.csat_good, nps_n = journey_fix_monthly.nps_n + excluded.nps_n, nps_net = journey_fix_monthly.nps_net + excluded.nps_net; END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
-- next statement
CREATE TRIGGER journey_fix_monthly_trigger AFTER INSERT OR UPDATE OR DELETE ON journey_fix_daily FOR EACH ROW EXECUTE FUNCTION journey_fix_monthly_apply()
