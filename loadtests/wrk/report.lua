-- Shared by the scenario scripts: one JSON line with throughput, latency percentiles and errors, which
-- loadtests/bench.py parses. Latencies are in milliseconds.
function done(summary, latency, requests)
   local errors = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      '{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, '
         .. '"max_ms": %.3f, "socket_errors": %d, "non_2xx": %d}\n',
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, errors.connect + errors.read + errors.write + errors.timeout, errors.status))
end
