-- wrk script: POST /v1/issues with a new PSA ticket id on every request (and, with
-- BENCH_IDEMPOTENCY=1, its own Idempotency-Key), then one JSON line.
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  counter = 0
  prefix = os.getenv("BENCH_PREFIX") or "bench"
  -- As a PSA integration sends them: an Idempotency-Key per ticket.
  keyed = os.getenv("BENCH_IDEMPOTENCY") == "1"
  wrk.method = "POST"
  wrk.path = "/v1/issues"
  wrk.headers["Content-Type"] = "application/json"
  local auth = os.getenv("BENCH_AUTH")
  if auth then wrk.headers["Authorization"] = auth end
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"external_ref":"%s-%d-%d","title":"Teams calls drop","description":' ..
    '"Calls drop after a minute for every user in the Berlin office.","service":' ..
    '"Microsoft Teams","category":"bug","severity":"moderate"}', prefix, tid, counter)
  if not keyed then return wrk.format(nil, nil, nil, body) end
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = string.format("%s-%d-%d", prefix, tid, counter)
  return wrk.format(nil, nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
