WITH evx AS NOT MATERIALIZED (
  SELECT
    profile_id,
    seq,
    event,
    ts,
    CASE
      WHEN event IN ('Order Completed')
      THEN JSONB_EXTRACT_PATH(properties, 'revenue')
    END AS x0,
    CASE
      WHEN event IN ('Product Viewed')
      THEN JSONB_EXTRACT_PATH(properties, 'category')
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
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ) - INTERVAL '90 DAY'
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
        THEN 1
      END
    ) AS c0,
    SUM(
      CASE
        WHEN event = 'Order Completed'
        AND ts >= (
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ) - INTERVAL '90 DAY'
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
        THEN CASE WHEN JSONB_TYPEOF(x0) = 'number' THEN CAST(x0 AS DOUBLE PRECISION) END
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
    (
      ARRAY_AGG(v ORDER BY n DESC NULLS LAST, last_o DESC NULLS LAST)
    )[1] AS value
  FROM (
    SELECT
      profile_id,
      (
        ARRAY_AGG(v)
      )[1] AS v,
      COUNT(*) AS n,
      MIN(o) AS first_o,
      MAX(o) AS last_o
    FROM (
      SELECT
        profile_id,
        x1 AS v,
        ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY ts, seq) AS o
      FROM (
        SELECT
          *
        FROM evx
        WHERE
          event = 'Product Viewed'
      ) AS m
    ) AS r
    WHERE
      JSONB_TYPEOF(v) <> 'null'
    GROUP BY
      profile_id,
      CAST(v AS VARCHAR)
  ) AS d
  GROUP BY
    profile_id
)
SELECT
  p.profile_id
FROM (
  SELECT
    profile_id,
    JSONB_EXTRACT_PATH(facts, 'subscriptions', 'email') AS f0,
    JSONB_EXTRACT_PATH(facts, 'consent', 'marketing') AS f1
  FROM profiles
) AS p
LEFT JOIN ev
  USING (profile_id)
LEFT JOIN v0
  USING (profile_id)
WHERE
  COALESCE((
    COALESCE(ev.c0, 0) >= CAST(3.0 AS DOUBLE PRECISION)
  ), FALSE)
  OR (
    (
      COALESCE((
        COALESCE(ev.c1, 0) >= CAST(500.0 AS DOUBLE PRECISION)
      ), FALSE)
    )
    AND COALESCE((
      JSONB_TYPEOF(p.f0) = 'string' AND p.f0 #>> '{}' IN ('subscribed')
    ), FALSE)
    AND COALESCE(
      (
        JSONB_TYPEOF(p.f1) = 'boolean'
        AND CASE WHEN JSONB_TYPEOF(p.f1) = 'boolean' THEN CAST(p.f1 AS BOOLEAN) END = TRUE
      ),
      FALSE
    )
  )
  OR COALESCE(
    (
      JSONB_TYPEOF(v0.value) = 'string'
      AND v0.value #>> '{}' IN ('shoes', 'running shoes')
    ),
    FALSE
  )
