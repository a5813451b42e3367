-- wrk script for bench/run.py: POSTs one client-credentials token request, over and over,
-- and counts every response that is not a 200 so the driver can fail loudly on them.
--
-- Input (environment, set by run.py): BENCH_BODY, the form body to send.
-- Output: one line `BENCH_JSON {...}` from done(), with counts and latency in microseconds.

local body = os.getenv("BENCH_BODY")
if body == nil or body == "" then
  io.stderr:write("token.lua: BENCH_BODY is not set\n")
  os.exit(2)
end

-- A static request: wrk builds it once per thread, so the Lua side costs nothing per request
-- except the response() callback below.
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
wrk.headers["User-Agent"] = "tokenhost-bench"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Per-thread globals, read from done() with thread:get().
ok = 0
non200 = 0
first_bad = ""

function response(status, headers, resp_body)
  if status == 200 then
    ok = ok + 1
  else
    non200 = non200 + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. string.sub(resp_body or "", 1, 300)
    end
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local total_ok, total_bad, bad = 0, 0, ""
  for _, thread in ipairs(threads) do
    total_ok = total_ok + (thread:get("ok") or 0)
    total_bad = total_bad + (thread:get("non200") or 0)
    local b = thread:get("first_bad") or ""
    if bad == "" then bad = b end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"ok":%d,"non200":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d},"first_bad":%s}\n',
    summary.requests, total_ok, total_bad, summary.duration,
    e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, json_string(bad)))
end
