-- wrk script for bench/rls.py: GETs PATH, or POSTs the bodies of BODIES_FILE round-robin, with AUTH.
-- Usage: wrk -t2 -c16 -d8s --latency -s bench/rls_wrk.lua http://127.0.0.1:PORT -- PATH AUTH [BODIES_FILE]
-- An answer counts as ok when it is HTTP 200 (and, for /verify, carries "isValid": true).

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = args[2] }
  reqs = {}
  if args[3] ~= nil and #args[3] > 0 then
    for line in io.lines(args[3]) do
      if #line > 0 then
        reqs[#reqs + 1] = wrk.format("POST", path, headers, line)
      end
    end
    verify = true
  else
    reqs[1] = wrk.format("GET", path, headers)
    verify = false
  end
  n = #reqs
  i = (((thread_id or 1) - 1) * 7919) % n
  ok = 0
  bad = 0
end

function request()
  i = i % n + 1
  return reqs[i]
end

function response(status, headers, body)
  if status == 200 and (not verify or string.find(body, '"isValid"%s*:%s*true')) then
    ok = ok + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do
    o = o + (tonumber(t:get("ok")) or 0)
    b = b + (tonumber(t:get("bad")) or 0)
  end
  local e = summary.errors
  b = b + e.connect + e.read + e.write + e.timeout
  io.write(string.format("BENCH_RESULT ok=%d bad=%d duration_us=%d p50_us=%d p99_us=%d\n",
    o, b, summary.duration, latency:percentile(50), latency:percentile(99)))
end
