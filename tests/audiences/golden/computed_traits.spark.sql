WITH evx AS (
  SELECT
    profile_id,
    seq,
    event,
    ts,
    CASE
      WHEN event IN ('Product Viewed')
      THEN GET_JSON_OBJECT(properties, '$.category')
    END AS x0,
    CASE
      WHEN event IN ('Order Completed')
      THEN GET_JSON_OBJECT(properties, '$.revenue')
    END AS x1,
    CASE
      WHEN event IN ('Order Completed')
      THEN GET_JSON_OBJECT(properties, '$.shipping.city')
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
          WHEN JSON_TYPE(x1) IN ('BIGINT', 'UBIGINT', 'DOUBLE')
          THEN CAST(x1 AS DOUBLE)
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
    MAX_BY(v, STRUCT_PACK(n := n, l := last_o)) AS value
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
        STRUCT_PACK(t := ts, s := seq) AS o
      FROM (
        SELECT
          *
        FROM evx
        WHERE
          event = 'Product Viewed'
      ) AS m
    ) AS r
    WHERE
      JSON_TYPE(v) <> 'NULL'
    GROUP BY
      profile_id,
      CAST(v AS STRING)
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
      STRUCT_PACK(t := ts, s := seq) AS o
    FROM (
      SELECT
        *
      FROM evx
      WHERE
        event = 'Order Completed'
    ) AS m
  ) AS r
  WHERE
    JSON_TYPE(v) <> 'NULL'
  GROUP BY
    profile_id
), v2 AS (
  SELECT
    profile_id,
    TO_JSON(LIST_SLICE(COLLECT_LIST(v), 1, 100)) AS value
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
        STRUCT_PACK(t := ts, s := seq) AS o
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
      JSON_TYPE(v) <> 'NULL'
    GROUP BY
      profile_id,
      CAST(v AS STRING)
  ) AS d
  GROUP BY
    profile_id
)
SELECT
  p.profile_id,
  TO_JSON(COALESCE(ev.c0, 0)) AS t0,
  v0.value AS t1,
  TO_JSON(COALESCE(ev.c1, 0)) AS t2,
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
