WITH evx AS NOT MATERIALIZED (
  SELECT
    profile_id,
    seq,
    event,
    ts,
    CASE WHEN event IN ('Order Completed') THEN properties -> '$.revenue' END AS x0,
    CASE WHEN event IN ('Product Viewed') THEN properties -> '$.category' END AS x1
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
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ) - INTERVAL '90' DAY
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
        THEN 1
      END
    ) AS c0,
    SUM(
      CASE
        WHEN event = 'Order Completed'
        AND ts >= (
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ) - INTERVAL '90' DAY
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
        THEN CASE
          WHEN JSON_TYPE(x0) IN ('BIGINT', 'UBIGINT', 'DOUBLE')
          THEN CAST(x0 AS DOUBLE)
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
    ARG_MAX(v, STRUCT_PACK(n := n, l := last_o)) AS value
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
      CAST(v AS TEXT)
  ) AS d
  GROUP BY
    profile_id
)
SELECT
  p.profile_id
FROM (
  SELECT
    profile_id,
    facts -> '$.subscriptions.email' AS f0,
    facts -> '$.consent.marketing' AS f1
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
        JSON_TYPE(p.f0) = 'VARCHAR' AND (
          p.f0 ->> '$'
        ) IN ('subscribed')
      ),
      FALSE
    )
    AND COALESCE((
      JSON_TYPE(p.f1) = 'BOOLEAN' AND TRY_CAST(p.f1 AS BOOLEAN) = TRUE
    ), FALSE)
  )
  OR COALESCE(
    (
      JSON_TYPE(v0.value) = 'VARCHAR'
      AND (
        v0.value ->> '$'
      ) IN ('shoes', 'running shoes')
    ),
    FALSE
  )
