WITH evx AS NOT MATERIALIZED (
  SELECT
    profile_id,
    seq,
    event,
    ts,
    CASE
      WHEN event IN ('Order Completed')
      THEN JSONB_EXTRACT_PATH(properties, 'revenue')
    END AS x0
  FROM event_profiles
  WHERE
    event IN ('Order Completed')
), ev AS (
  SELECT
    profile_id,
    SUM(
      CASE
        WHEN event = 'Order Completed'
        AND ts >= (
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ) - INTERVAL '90 DAY'
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
        THEN CASE WHEN JSONB_TYPEOF(x0) = 'number' THEN CAST(x0 AS DOUBLE PRECISION) END
      END
    ) AS c0
  FROM evx
  WHERE
    event IN ('Order Completed')
  GROUP BY
    profile_id
)
SELECT
  p.profile_id
FROM profiles AS p
LEFT JOIN ev
  USING (profile_id)
WHERE
  COALESCE((
    COALESCE(ev.c0, 0) >= CAST(500.0 AS DOUBLE PRECISION)
  ), FALSE)
