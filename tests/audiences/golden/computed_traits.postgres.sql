WITH evx AS NOT MATERIALIZED (
  SELECT
    profile_id,
    seq,
    event,
    ts,
    CASE
      WHEN event IN ('Product Viewed')
      THEN JSONB_EXTRACT_PATH(properties, 'category')
    END AS x0,
    CASE
      WHEN event IN ('Order Completed')
      THEN JSONB_EXTRACT_PATH(properties, 'revenue')
    END AS x1,
    CASE
      WHEN event IN ('Order Completed')
      THEN JSONB_EXTRACT_PATH(properties, 'shipping', 'city')
    END AS x2
  FROM _scoped_events
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
        THEN CASE WHEN JSONB_TYPEOF(x1) = 'number' THEN CAST(x1 AS DOUBLE PRECISION) END
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
        x0 AS v,
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
), v1 AS (
  SELECT
    profile_id,
    (
      ARRAY_AGG(v ORDER BY o DESC NULLS LAST)
    )[1] AS value
  FROM (
    SELECT
      profile_id,
      x2 AS v,
      ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY ts, seq) AS o
    FROM (
      SELECT
        *
      FROM evx
      WHERE
        event = 'Order Completed'
    ) AS m
  ) AS r
  WHERE
    JSONB_TYPEOF(v) <> 'null'
  GROUP BY
    profile_id
), v2 AS (
  SELECT
    profile_id,
    TO_JSONB((
      ARRAY_AGG(v ORDER BY first_o)
    )[1:100]) AS value
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
        x0 AS v,
        ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY ts, seq) AS o
      FROM (
        SELECT
          *
        FROM evx
        WHERE
          event = 'Product Viewed'
          AND ts >= (
            CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ) - INTERVAL '30 DAY'
          )
          AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
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
  p.profile_id,
  TO_JSONB(COALESCE(ev.c0, 0)) AS t0,
  v0.value AS t1,
  TO_JSONB(COALESCE(ev.c1, 0)) AS t2,
  v1.value AS t3,
  v2.value AS t4
FROM _scoped_profiles AS p
LEFT JOIN ev
  USING (profile_id)
LEFT JOIN v0
  USING (profile_id)
LEFT JOIN v1
  USING (profile_id)
LEFT JOIN v2
  USING (profile_id)
