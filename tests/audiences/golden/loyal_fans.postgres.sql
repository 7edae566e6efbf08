WITH ev AS (
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
        THEN CASE
          WHEN JSON_TYPE(JSON_EXTRACT_PATH(properties, 'revenue')) IN ('BIGINT', 'UBIGINT', 'DOUBLE')
          THEN CAST(JSON_EXTRACT_PATH(properties, 'revenue') AS DOUBLE PRECISION)
        END
      END
    ) AS c1
  FROM event_profiles
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
        JSON_EXTRACT_PATH(properties, 'category') AS v,
        STRUCT_PACK(t := ts, s := seq) AS o
      FROM (
        SELECT
          *
        FROM event_profiles
        WHERE
          event = 'Product Viewed'
      ) AS m
    ) AS r
    WHERE
      JSON_TYPE(v) <> 'NULL'
    GROUP BY
      profile_id,
      CAST(v AS VARCHAR)
  ) AS d
  GROUP BY
    profile_id
)
SELECT
  p.profile_id
FROM profiles AS p
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
    AND COALESCE(
      (
        JSON_TYPE(JSON_EXTRACT_PATH(p.facts, 'consent', 'email')) = 'BOOLEAN'
        AND CAST(JSON_EXTRACT_PATH(p.facts, 'consent', 'email') AS BOOLEAN) = TRUE
      ),
      FALSE
    )
  )
  OR COALESCE(
    (
      (
        JSON_TYPE(v0.value) = 'VARCHAR'
        AND (
          JSON_EXTRACT_PATH_TEXT(v0.value, VARIADIC '{}')
        ) = 'shoes'
      )
      OR (
        JSON_TYPE(v0.value) = 'VARCHAR'
        AND (
          JSON_EXTRACT_PATH_TEXT(v0.value, VARIADIC '{}')
        ) = 'running shoes'
      )
    ),
    FALSE
  )
