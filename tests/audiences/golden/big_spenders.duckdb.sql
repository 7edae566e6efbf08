WITH ev AS (
  SELECT
    profile_id,
    SUM(
      CASE
        WHEN event = 'Order Completed'
        AND ts >= (
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ) - INTERVAL '90' DAY
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
        THEN CASE
          WHEN JSON_TYPE(properties -> '$.revenue') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
          THEN CAST(properties -> '$.revenue' AS DOUBLE)
        END
      END
    ) AS c0
  FROM event_profiles
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
    COALESCE(ev.c0, 0) >= CAST(500.0 AS DOUBLE)
  ), FALSE)
