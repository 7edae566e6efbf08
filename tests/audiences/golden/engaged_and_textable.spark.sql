WITH evx AS (
  SELECT
    profile_id,
    seq,
    event,
    ts
  FROM event_profiles
  WHERE
    event IN ('Email Opened')
), ev AS (
  SELECT
    profile_id,
    COUNT(
      CASE
        WHEN event = 'Email Opened'
        AND ts >= (
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP) - INTERVAL '30' DAY
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMP)
        THEN 1
      END
    ) AS c0
  FROM evx
  WHERE
    event IN ('Email Opened')
  GROUP BY
    profile_id
)
SELECT
  p.profile_id
FROM (
  SELECT
    profile_id,
    TRY_VARIANT_GET(facts, '$["reachable"]', 'variant') AS f0,
    TRY_VARIANT_GET(facts, '$["traits"]["email"]', 'variant') AS f1
  FROM profiles
) AS p
LEFT JOIN ev
  USING (profile_id)
WHERE
  COALESCE((
    COALESCE(ev.c0, 0) >= 1
  ), FALSE)
  AND COALESCE(
    (
      STARTSWITH(SCHEMA_OF_VARIANT(p.f0), 'ARRAY')
      AND ARRAY_CONTAINS(
        TRANSFORM(
          TRY_VARIANT_GET(p.f0, '$', 'array<variant>'),
          x -> CASE
            WHEN SCHEMA_OF_VARIANT(x) = 'STRING'
            THEN TRY_VARIANT_GET(x, '$', 'string')
          END
        ),
        'sms'
      )
    ),
    FALSE
  )
  AND NOT (
    COALESCE(
      (
        SCHEMA_OF_VARIANT(p.f1) = 'STRING'
        AND ENDSWITH(TRY_VARIANT_GET(p.f1, '$', 'string'), '@example.com')
      ),
      FALSE
    )
  )
