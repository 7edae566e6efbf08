WITH evx AS (
  SELECT
    profile_id,
    seq,
    event,
    ts,
    CASE
      WHEN event IN ('Product Viewed')
      THEN TRY_VARIANT_GET(properties, '$["category"]', 'variant')
    END AS x0
  FROM event_profiles
  WHERE
    event IN ('Order Completed', 'Product Viewed')
), ev AS (
  SELECT
    profile_id,
    COUNT(
      CASE
        WHEN event = 'Product Viewed'
        AND ts >= (
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP) - INTERVAL '7' DAY
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP)
        THEN CASE
          WHEN COALESCE(
            (
              SCHEMA_OF_VARIANT(x0) = 'STRING'
              AND TRY_VARIANT_GET(x0, '$', 'string') IN ('running shoes')
            ),
            FALSE
          )
          THEN 1
        END
      END
    ) AS c0,
    COUNT(
      CASE
        WHEN event = 'Order Completed'
        AND ts >= (
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP) - INTERVAL '7' DAY
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP)
        THEN 1
      END
    ) AS c1
  FROM evx
  WHERE
    event IN ('Order Completed', 'Product Viewed')
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
    COALESCE(ev.c0, 0) >= 2
  ), FALSE)
  AND COALESCE((
    COALESCE(ev.c1, 0) = 0
  ), FALSE)
