-- wrk script for bench/verify.py: POSTs pre-generated /verify bodies round-robin and counts the answers.
-- Usage: wrk -t2 -c16 -d10s --latency -s bench/verify_wrk.lua http://127.0.0.1:PORT -- BODIES_FILE [PATH [AUTH]]
-- (AUTH, when given and not empty, is sent as the Authorization header, e.g. "Bearer x402_...").
-- BODIES_FILE holds one JSON request body per line. A valid answer is HTTP 200 with "isValid": true in the body;
-- anything else counts as invalid (the first one is kept as a sample). done() prints one BENCH_RESULT line.

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[2] or "/verify"
  local headers = { ["Content-Type"] = "application/json" }
  if args[3] ~= nil and #args[3] > 0 then
    headers["Authorization"] = args[3]
  end
  reqs = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("POST", path, headers, line)
    end
  end
  n = #reqs
  if n == 0 then
    error("no request bodies in " .. tostring(args[1]))
  end
  -- Threads start at different offsets so they do not send the same payloads in lockstep.
  i = (((thread_id or 1) - 1) * 7919) % n
  valid = 0
  invalid = 0
  bad_status = 0
  sample = ""
end

function request()
  i = i % n + 1
  return reqs[i]
end

function response(status, headers, body)
  if status == 200 and body ~= nil and string.find(body, '"isValid"%s*:%s*true') then
    valid = valid + 1
  else
    invalid = invalid + 1
    if status ~= 200 then
      bad_status = bad_status + 1
    end
    if sample == "" then
      sample = tostring(status) .. " " .. string.sub(tostring(body), 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local v, inv, bs, smp = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    v = v + (tonumber(t:get("valid")) or 0)
    inv = inv + (tonumber(t:get("invalid")) or 0)
    bs = bs + (tonumber(t:get("bad_status")) or 0)
    local s = t:get("sample")
    if smp == "" and s ~= nil and s ~= "" then
      smp = s
    end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT valid=%d invalid=%d bad_status=%d requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d " ..
    "max_us=%d mean_us=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    v, inv, bs, summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, math.floor(latency.mean), e.connect, e.read, e.write, e.status,
    e.timeout))
  if smp ~= "" then
    io.write("BENCH_SAMPLE " .. string.gsub(smp, "[\r\n]", " ") .. "\n")
  end
end
