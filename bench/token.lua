-- wrk script for bench/run.py: POSTs one client-credentials token request, over and over,
-- and counts every response that is not a 200 so the driver can fail loudly on them.
--
-- Input (environment, set by run.py): BENCH_BODY, the form body to send; or BENCH_FILE, a
-- file of requests that may each be sent once (client assertions, DPoP proofs), one per
-- line: the form body, then optionally a tab and a DPoP proof. Thread k of n sends lines
-- k, k+n, k+2n...; a thread that runs out stops and counts it in "exhausted".
-- Output: one line `BENCH_JSON {...}` from done(), with counts and latency in microseconds.

local body = os.getenv("BENCH_BODY")
local file = os.getenv("BENCH_FILE")
if (body == nil or body == "") and (file == nil or file == "") then
  io.stderr:write("token.lua: neither BENCH_BODY nor BENCH_FILE is set\n")
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
  thread:set("index", #threads)
end

-- Per-thread: this thread's share of the file, read once, before the first request.
local lines = nil
exhausted = 0

function init(args)
  if file == nil or file == "" then
    return
  end
  lines = {}
  local n, k, count = 0, index or 1, tonumber(os.getenv("BENCH_THREADS") or "1")
  for line in io.lines(file) do
    n = n + 1
    if (n - k) % count == 0 then
      local request_body, proof = string.match(line, "^([^\t]*)\t?(.*)$")
      local headers = {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Accept"] = "application/json",
        ["User-Agent"] = "tokenhost-bench",
      }
      if proof ~= "" then
        headers["DPoP"] = proof
      end
      table.insert(lines, wrk.format("POST", nil, headers, request_body))
    end
  end
end

local next_line = 0

function request()
  if lines == nil then
    return wrk.request()
  end
  next_line = next_line + 1
  if next_line > #lines then
    exhausted = 1
    wrk.thread:stop()
    return lines[#lines]
  end
  return lines[next_line]
end

-- Per-thread globals, read from done() with thread:get().
ok = 0
non200 = 0
first_bad = ""

function response(status, headers, resp_body)
  if exhausted == 1 then
    return -- the answer to the line resent as the thread stopped: a replay, not measured
  end
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
  local total_ok, total_bad, bad, ran_out = 0, 0, "", 0
  for _, thread in ipairs(threads) do
    ran_out = ran_out + (thread:get("exhausted") or 0)
    total_ok = total_ok + (thread:get("ok") or 0)
    total_bad = total_bad + (thread:get("non200") or 0)
    local b = thread:get("first_bad") or ""
    if bad == "" then bad = b end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"ok":%d,"non200":%d,"exhausted":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d},"first_bad":%s}\n',
    summary.requests, total_ok, total_bad, ran_out, summary.duration,
    e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, json_string(bad)))
end
