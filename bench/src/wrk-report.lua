-- wrk reporting hook: one machine-readable line with throughput and latency percentiles
-- (wrk's latency figures are in microseconds).
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "WRK requests=%d errors=%d seconds=%.3f rps=%.2f p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout,
    seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(99), latency.max))
end
