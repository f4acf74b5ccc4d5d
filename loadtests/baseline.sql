-- The baseline a team would otherwise write: the KPIs of GET /v1/kpis?window=today computed by one query
-- per poll over the events table. loadtests/bench.py times it against queuepulse's read path; rerun it by
-- hand with psql, binding
--   $1 local midnight (timestamptz), $2 now (timestamptz), $3 phone threshold seconds,
--   $4 visit threshold seconds, $5 short-abandon limit seconds, $6 longest wait before expiry seconds.
WITH recent AS (
    SELECT channel, contact_id, queue, type, occurred_at, wait_seconds, resolved
    FROM events
    WHERE occurred_at >= $1::timestamptz - make_interval(secs => $6::float8)
      AND occurred_at <= $2::timestamptz
),
contacts AS (
    SELECT channel,
           min(occurred_at) FILTER (WHERE type IN ('call.offered', 'ticket.issued')) AS arrived_at,
           min(queue) FILTER (WHERE type IN ('call.offered', 'ticket.issued')) AS arrive_queue,
           min(occurred_at) FILTER (WHERE type IN ('call.answered', 'ticket.called')) AS started_at,
           min(queue) FILTER (WHERE type IN ('call.answered', 'ticket.called')) AS start_queue,
           min(wait_seconds) FILTER (WHERE type IN ('call.answered', 'ticket.called')) AS start_wait,
           min(occurred_at) FILTER (WHERE type IN ('call.abandoned', 'ticket.cancelled')) AS left_at,
           min(queue) FILTER (WHERE type IN ('call.abandoned', 'ticket.cancelled')) AS leave_queue,
           min(wait_seconds) FILTER (WHERE type IN ('call.abandoned', 'ticket.cancelled')) AS leave_wait,
           min(occurred_at) FILTER (
               WHERE type IN ('call.ended', 'call.transferred', 'ticket.completed', 'ticket.no_show')
           ) AS finished_at,
           bool_or(type = 'call.transferred') AS transferred,
           bool_or(type = 'ticket.no_show') AS no_show,
           bool_or(resolved) AS resolved
    FROM recent
    GROUP BY channel, contact_id
),
measured AS (
    SELECT channel,
           coalesce(start_queue, leave_queue, arrive_queue) AS queue,
           arrived_at, started_at, left_at, finished_at, transferred, no_show, resolved,
           CASE WHEN channel = 'phone' THEN $3::float8 ELSE $4::float8 END AS threshold,
           coalesce(start_wait, extract(epoch FROM started_at - arrived_at)::float8) AS wait,
           coalesce(leave_wait, extract(epoch FROM left_at - arrived_at)::float8) AS left_wait,
           started_at IS NULL AND left_at IS NULL AND finished_at IS NULL
               AND arrived_at > $2::timestamptz - make_interval(secs => $6::float8) AS waiting
    FROM contacts
),
per_queue AS (
    SELECT channel, queue,
           count(*) FILTER (WHERE arrived_at >= $1::timestamptz) AS arrived,
           count(*) FILTER (WHERE started_at >= $1::timestamptz AND wait IS NOT NULL) AS started,
           count(*) FILTER (WHERE started_at >= $1::timestamptz AND wait <= threshold) AS started_within,
           avg(wait) FILTER (WHERE started_at >= $1::timestamptz) AS avg_wait,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY wait) FILTER (WHERE started_at >= $1::timestamptz)
               AS wait_p50,
           percentile_disc(0.9) WITHIN GROUP (ORDER BY wait) FILTER (WHERE started_at >= $1::timestamptz)
               AS wait_p90,
           count(*) FILTER (WHERE left_at >= $1::timestamptz AND left_wait IS NOT NULL) AS left_,
           count(*) FILTER (WHERE left_at >= $1::timestamptz AND left_wait > $5::float8) AS left_after_short,
           count(*) FILTER (WHERE waiting) AS waiting_now,
           count(*) FILTER (
               WHERE waiting AND arrived_at < $2::timestamptz - make_interval(secs => threshold)
           ) AS waiting_past_target,
           max(extract(epoch FROM $2::timestamptz - arrived_at)) FILTER (WHERE waiting) AS longest_wait_now,
           avg(extract(epoch FROM finished_at - started_at)) FILTER (
               WHERE finished_at >= $1::timestamptz AND started_at IS NOT NULL AND NOT no_show
           ) AS avg_handle,
           count(*) FILTER (WHERE finished_at >= $1::timestamptz AND NOT no_show) AS served,
           count(*) FILTER (
               WHERE finished_at >= $1::timestamptz AND NOT no_show AND NOT transferred AND resolved
           ) AS resolved_first_contact,
           count(*) FILTER (WHERE finished_at >= $1::timestamptz AND transferred) AS transferred
    FROM measured
    GROUP BY ROLLUP (channel, queue)
)
SELECT channel, queue, arrived, started, started_within, left_, left_after_short, waiting_now,
       waiting_past_target, longest_wait_now, avg_wait, wait_p50, wait_p90, avg_handle, transferred,
       round((100.0 * started_within / nullif(started + left_after_short + waiting_past_target, 0))::numeric, 2)
           AS service_level_pct,
       round((100.0 * left_ / nullif(started + left_, 0))::numeric, 2) AS abandon_rate_pct,
       round((100.0 * resolved_first_contact / nullif(served, 0))::numeric, 2) AS first_contact_resolution_pct,
       round((arrived / nullif(extract(epoch FROM $2::timestamptz - $1::timestamptz) / 3600, 0))::numeric, 2)
           AS arrivals_per_hour
FROM per_queue
WHERE channel IS NOT NULL
ORDER BY channel, queue NULLS FIRST
