-- wrk script of the soak test: a steady mix through the bff, cycling
--   GET  /web/users/<reader>/dashboard      (token)
--   GET  /api/users/<reader>                (gateway, token)
--   GET  /mobile/users/<reader>/dashboard   (token)
--   GET  /api/orders?user_id=<reader>       (gateway, token)
-- and, every SOAK_POST_EVERY-th request, POST /api/orders as another user
-- (so that the reader's dashboards stay the same size while orders pile
-- up). SOAK_DELAY_MS, when set, pauses each connection that long before
-- its next request, which sets the load below capacity.
-- Environment: SOAK_READER, SOAK_READER_TOKEN, SOAK_WRITER_TOKEN.

local reader = os.getenv("SOAK_READER") or "1"
local rtok = "Bearer " .. (os.getenv("SOAK_READER_TOKEN") or "")
local wtok = "Bearer " .. (os.getenv("SOAK_WRITER_TOKEN") or "")
local post_every = tonumber(os.getenv("SOAK_POST_EVERY") or "10") or 10
local pause = tonumber(os.getenv("SOAK_DELAY_MS") or "0") or 0
local order = '{"items":[{"sku":"BOOK-42","quantity":1,"unit_price_cents":1250}]}'
local n = 0

request = function()
  n = n + 1
  if n % post_every == 0 then
    return wrk.format("POST", "/api/orders",
      { ["Authorization"] = wtok, ["Content-Type"] = "application/json" }, order)
  end
  local k = n % 4
  if k == 0 then
    return wrk.format("GET", "/web/users/" .. reader .. "/dashboard", { ["Authorization"] = rtok })
  elseif k == 1 then
    return wrk.format("GET", "/api/users/" .. reader, { ["Authorization"] = rtok })
  elseif k == 2 then
    return wrk.format("GET", "/mobile/users/" .. reader .. "/dashboard", { ["Authorization"] = rtok })
  end
  return wrk.format("GET", "/api/orders?user_id=" .. reader, { ["Authorization"] = rtok })
end

if pause > 0 then
  delay = function() return pause end
end
