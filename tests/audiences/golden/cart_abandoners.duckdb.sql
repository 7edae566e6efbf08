WITH evx AS NOT MATERIALIZED (
  SELECT
    profile_id,
    seq,
    event,
    ts
  FROM event_profiles
  WHERE
    event IN ('Order Completed', 'Product Added')
), s0 AS (
  SELECT
    profile_id,
    BOOL_OR(
      CAST((
        is_a
        AND (
          ts + INTERVAL '60' MINUTE
        ) <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
      )
      AND (
        next_b IS NULL OR next_b > (
          ts + INTERVAL '60' MINUTE
        )
      ) AS BOOLEAN)
    ) AS value
  FROM (
    SELECT
      profile_id,
      ts,
      is_a,
      MIN(CASE WHEN is_b THEN ts END) OVER (
        PARTITION BY profile_id
        ORDER BY ts, seq
        ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
      ) AS next_b
    FROM (
      SELECT
        profile_id,
        ts,
        seq,
        COALESCE(
          CASE
            WHEN event = 'Product Added'
            AND ts >= (
              CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ) - INTERVAL '7' DAY
            )
            AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
            THEN TRUE
          END,
          FALSE
        ) AS is_a,
        COALESCE(CASE WHEN event = 'Order Completed' THEN TRUE END, FALSE) AS is_b
      FROM evx
      WHERE
        event IN ('Product Added', 'Order Completed')
    ) AS e
  ) AS o
  GROUP BY
    profile_id
)
SELECT
  p.profile_id
FROM profiles AS p
LEFT JOIN s0
  USING (profile_id)
WHERE
  COALESCE((
    s0.value
  ), FALSE)
