-- wrk script: 16 requests in every write (HTTP pipelining), and the latency
-- of those batches printed by done().
--
-- Under pipelining wrk takes one latency sample per batch (from the batch's
-- write to its last response) but corrects for coordinated omission with
-- the interval between single responses, 16 times too short. The synthetic
-- samples it adds can fall below the smallest real one, where its own
-- percentile walk never looks, so its p99 reads 0. done() undoes that
-- correction (it is deterministic: for every sample n >= 2e it adds one at
-- n - e, n - 2e, ... while above e) and prints the percentiles of the real
-- batch samples as "msvc-batch-latency-us: p50 p99 samples".
-- WRK_CONNS must hold wrk's -c value; MSVC_PIPELINE_PATH the path (default
-- /hello).

init = function(args)
  local path = os.getenv("MSVC_PIPELINE_PATH") or "/hello"
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, path) end
  req = table.concat(r)
end

request = function() return req end

done = function(summary, latency, requests)
  local conns = tonumber(os.getenv("WRK_CONNS") or "0") or 0
  local n = #latency
  if conns <= 0 or n == 0 then return end
  local per_conn = math.floor(summary.requests / conns)
  local e = 0
  if per_conn > 0 then e = math.floor(summary.duration / per_conn) end
  local vals, cnts = {}, {}
  for i = 1, n do vals[i], cnts[i] = latency(i) end
  local added, orig, total = {}, {}, 0
  for i = n, 1, -1 do
    local v = vals[i]
    local o = cnts[i] - (added[v] or 0)
    if o < 0 then o = 0 end
    orig[i] = o
    total = total + o
    if e > 0 and o > 0 and v >= 2 * e then
      local m = v - e
      while m > e do
        added[m] = (added[m] or 0) + o
        m = m - e
      end
    end
  end
  local function pct(p)
    local rank = math.floor(p / 100 * total + 0.5 + 0.5)
    local acc = 0
    for i = 1, n do
      acc = acc + orig[i]
      if acc >= rank then return vals[i] end
    end
    return vals[n]
  end
  io.write(string.format("msvc-batch-latency-us: %d %d %d\n", pct(50), pct(99), total))
end
