WITH evx AS (
  SELECT
    profile_id,
    seq,
    event,
    ts,
    CASE
      WHEN event IN ('Order Completed')
      THEN TRY_VARIANT_GET(properties, '$["revenue"]', 'variant')
    END AS x0,
    CASE
      WHEN event IN ('Product Viewed')
      THEN TRY_VARIANT_GET(properties, '$["category"]', 'variant')
    END AS x1
  FROM event_profiles
  WHERE
    event IN ('Order Completed', 'Product Viewed')
), ev AS (
  SELECT
    profile_id,
    COUNT(
      CASE
        WHEN event = 'Order Completed'
        AND ts >= (
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP) - INTERVAL '90' DAY
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP)
        THEN 1
      END
    ) AS c0,
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
    ) AS c1
  FROM evx
  WHERE
    event IN ('Order Completed')
  GROUP BY
    profile_id
), v0 AS (
  SELECT
    profile_id,
    MAX_BY(v, NAMED_STRUCT('n', n, 'l', last_o)) AS value
  FROM (
    SELECT
      profile_id,
      ANY_VALUE(v) AS v,
      COUNT(*) AS n,
      MIN(o) AS first_o,
      MAX(o) AS last_o
    FROM (
      SELECT
        profile_id,
        x1 AS v,
        NAMED_STRUCT('t', ts, 's', seq) AS o
      FROM (
        SELECT
          *
        FROM evx
        WHERE
          event = 'Product Viewed'
      ) AS m
    ) AS r
    WHERE
      SCHEMA_OF_VARIANT(v) <> 'VOID'
    GROUP BY
      profile_id,
      TO_JSON(v)
  ) AS d
  GROUP BY
    profile_id
)
SELECT
  p.profile_id
FROM (
  SELECT
    profile_id,
    TRY_VARIANT_GET(facts, '$["subscriptions"]["email"]', 'variant') AS f0,
    TRY_VARIANT_GET(facts, '$["consent"]["marketing"]', 'variant') AS f1
  FROM profiles
) AS p
LEFT JOIN ev
  USING (profile_id)
LEFT JOIN v0
  USING (profile_id)
WHERE
  COALESCE((
    COALESCE(ev.c0, 0) >= CAST(3.0 AS DOUBLE)
  ), FALSE)
  OR (
    (
      COALESCE((
        COALESCE(ev.c1, 0) >= CAST(500.0 AS DOUBLE)
      ), FALSE)
    )
    AND COALESCE(
      (
        SCHEMA_OF_VARIANT(p.f0) = 'STRING'
        AND TRY_VARIANT_GET(p.f0, '$', 'string') IN ('subscribed')
      ),
      FALSE
    )
    AND COALESCE(
      (
        SCHEMA_OF_VARIANT(p.f1) = 'BOOLEAN'
        AND CASE
          WHEN SCHEMA_OF_VARIANT(p.f1) = 'BOOLEAN'
          THEN TRY_VARIANT_GET(p.f1, '$', 'boolean')
        END = TRUE
      ),
      FALSE
    )
  )
  OR COALESCE(
    (
      SCHEMA_OF_VARIANT(v0.value) = 'STRING'
      AND TRY_VARIANT_GET(v0.value, '$', 'string') IN ('shoes', 'running shoes')
    ),
    FALSE
  )
