WITH evx AS (
  SELECT
    profile_id,
    seq,
    event,
    ts,
    CASE
      WHEN event IN ('Product Viewed')
      THEN TRY_VARIANT_GET(properties, '$["category"]', 'variant')
    END AS x0,
    CASE
      WHEN event IN ('Order Completed')
      THEN TRY_VARIANT_GET(properties, '$["revenue"]', 'variant')
    END AS x1,
    CASE
      WHEN event IN ('Order Completed')
      THEN TRY_VARIANT_GET(properties, '$["shipping"]["city"]', 'variant')
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
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP) - INTERVAL '90' DAY
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP)
        THEN 1
      END
    ) AS c0,
    SUM(
      CASE
        WHEN event = 'Order Completed'
        THEN CASE
          WHEN SCHEMA_OF_VARIANT(x1) IN ('BIGINT', 'DOUBLE')
          OR STARTSWITH(SCHEMA_OF_VARIANT(x1), 'DECIMAL')
          THEN TRY_VARIANT_GET(x1, '$', 'double')
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
        x0 AS v,
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
), v1 AS (
  SELECT
    profile_id,
    MAX_BY(v, o) AS value
  FROM (
    SELECT
      profile_id,
      x2 AS v,
      NAMED_STRUCT('t', ts, 's', seq) AS o
    FROM (
      SELECT
        *
      FROM evx
      WHERE
        event = 'Order Completed'
    ) AS m
  ) AS r
  WHERE
    SCHEMA_OF_VARIANT(v) <> 'VOID'
  GROUP BY
    profile_id
), v2 AS (
  SELECT
    profile_id,
    CAST(SLICE(
      TRANSFORM(
        ARRAY_SORT(COLLECT_LIST(NAMED_STRUCT('o', first_o, 'j', TO_JSON(v)))),
        x -> PARSE_JSON(x.j)
      ),
      1,
      100
    ) AS VARIANT) AS value
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
        x0 AS v,
        NAMED_STRUCT('t', ts, 's', seq) AS o
      FROM (
        SELECT
          *
        FROM evx
        WHERE
          event = 'Product Viewed'
          AND ts >= (
            CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP) - INTERVAL '30' DAY
          )
          AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP)
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
  p.profile_id,
  CAST(COALESCE(ev.c0, 0) AS VARIANT) AS t0,
  v0.value AS t1,
  CAST(COALESCE(ev.c1, 0) AS VARIANT) AS t2,
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
