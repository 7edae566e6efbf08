WITH ev AS (
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
  FROM event_profiles
  WHERE
    event IN ('Email Opened')
  GROUP BY
    profile_id
)
SELECT
  p.profile_id
FROM profiles AS p
LEFT JOIN ev
  USING (profile_id)
WHERE
  COALESCE((
    COALESCE(ev.c0, 0) >= 1
  ), FALSE)
  AND COALESCE(
    (
      LIST_CONTAINS(CAST(JSON_EXTRACT_PATH(p.facts, 'reachable') AS VARCHAR[]), 'sms')
    ),
    FALSE
  )
  AND NOT (
    COALESCE(
      (
        JSON_TYPE(JSON_EXTRACT_PATH(p.facts, 'traits', 'email')) = 'VARCHAR'
        AND ENDS_WITH(
          JSON_EXTRACT_PATH_TEXT(JSON_EXTRACT_PATH(p.facts, 'traits', 'email'), VARIADIC '{}'),
          '@example.com'
        )
      ),
      FALSE
    )
  )
