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
    GET_JSON_OBJECT(facts, '$.reachable') AS f0,
    GET_JSON_OBJECT(facts, '$.traits.email') AS f1
  FROM profiles
) AS p
LEFT JOIN ev
  USING (profile_id)
WHERE
  COALESCE((
    COALESCE(ev.c0, 0) >= 1
  ), FALSE)
  AND COALESCE((
    LIST_CONTAINS(CAST(p.f0 AS ARRAY<STRING>), 'sms')
  ), FALSE)
  AND NOT (
    COALESCE(
      (
        JSON_TYPE(p.f1) = 'VARCHAR'
        AND ENDSWITH(GET_JSON_OBJECT(p.f1, '$'), '@example.com')
      ),
      FALSE
    )
  )
