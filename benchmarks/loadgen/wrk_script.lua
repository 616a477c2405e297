-- the template that benchmarks/loadgen/wrk.py fills in (the request specs and whether to count versions)
local reqs = {}
local specs = __SPECS__
local count_versions = __COUNT_VERSIONS__
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("offset", #threads * 7919)
end

function init(args)
  for i, s in ipairs(specs) do
    local headers = {}
    if s.body then headers["Content-Type"] = s.content_type end
    reqs[i] = wrk.format(s.method, s.path, headers, s.body)
  end
  counter = offset or 0
  versions = {}
  statuses = {}
end

function request()
  counter = counter + 1
  return reqs[(counter % #reqs) + 1]
end

if count_versions then
  function response(status, headers, body)
    local v = headers["X-Model-Version"] or headers["x-model-version"]
    if v then versions[v] = (versions[v] or 0) + 1 end
    local s = tostring(status)
    statuses[s] = (statuses[s] or 0) + 1
  end
end

local function enc(t)
  local parts = {}
  for k, v in pairs(t) do table.insert(parts, string.format("%q:%d", k, v)) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local all_versions, all_statuses = {}, {}
  for _, t in ipairs(threads) do
    local tv = t:get("versions") or {}
    for k, v in pairs(tv) do all_versions[k] = (all_versions[k] or 0) + v end
    local ts = t:get("statuses") or {}
    for k, v in pairs(ts) do all_statuses[k] = (all_statuses[k] or 0) + v end
  end
  local e = summary.errors
  io.write("WRKJSON ")
  io.write(string.format(
    '{"duration_us":%d,"requests":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p95":%d,"p99":%d,"max":%d,"mean":%f},"versions":%s,"statuses":%s}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean,
    enc(all_versions), enc(all_statuses)))
end
