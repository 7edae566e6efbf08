WITH evx AS (
  SELECT
    profile_id,
    seq,
    event,
    ts,
    CASE
      WHEN event IN ('Order Completed')
      THEN TRY_VARIANT_GET(properties, '$["revenue"]', 'variant')
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
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP) - INTERVAL '90' DAY
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP)
        THEN CASE
          WHEN SCHEMA_OF_VARIANT(x0) IN ('BIGINT', 'DOUBLE')
          OR STARTSWITH(SCHEMA_OF_VARIANT(x0), 'DECIMAL')
          THEN TRY_VARIANT_GET(x0, '$', 'double')
        END
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
    COALESCE(ev.c0, 0) >= CAST(500.0 AS DOUBLE)
  ), FALSE)
