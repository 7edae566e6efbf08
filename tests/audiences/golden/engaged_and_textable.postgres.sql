WITH evx AS NOT MATERIALIZED (
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
          CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ) - INTERVAL '30 DAY'
        )
        AND ts <= CAST('2026-11-29T12:00:00.000000Z' AS TIMESTAMPTZ)
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
    JSONB_EXTRACT_PATH(facts, 'reachable') AS f0,
    JSONB_EXTRACT_PATH(facts, 'traits', 'email') AS f1
  FROM profiles
) AS p
LEFT JOIN ev
  USING (profile_id)
WHERE
  COALESCE((
    COALESCE(ev.c0, 0) >= 1
  ), FALSE)
  AND COALESCE((
    JSONB_TYPEOF(p.f0) = 'array' AND p.f0 @> JSONB_BUILD_ARRAY('sms')
  ), FALSE)
  AND NOT (
    COALESCE(
      (
        JSONB_TYPEOF(p.f1) = 'string' AND RIGHT(p.f1 #>> '{}', 12) = '@example.com'
      ),
      FALSE
    )
  )
