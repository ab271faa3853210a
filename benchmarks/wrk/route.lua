-- wrk script for serve_load.sh: one route, random ids. Environment:
--   ROUTE      recommendations | similar | audience | events
--   CUSTOMERS  PRODUCTS   id ranges of the synthetic shop (ids c0.., p0..)
--   API_KEY    write key (events; the customer routes need a key too, any role)
--   THINK_MS   mean pause of each connection before each request, exponentially distributed
--              (unset or 0: none, every connection sends its next request at once). With a
--              pause the load is below saturation: latency at a given rate, not at the limit.
local route = os.getenv("ROUTE")
local customers = tonumber(os.getenv("CUSTOMERS"))
local products = tonumber(os.getenv("PRODUCTS"))
local key = os.getenv("API_KEY") or ""
local counter = 0
local think_ms = tonumber(os.getenv("THINK_MS") or "0")

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed)
end

if think_ms > 0 then
  -- wrk waits this many whole milliseconds before sending the connection's next request.
  delay = function()
    return math.floor(-think_ms * math.log(1 - math.random()) + 0.5)
  end
end

local auth = {["Authorization"] = "Bearer " .. key}

request = function()
  if route == "recommendations" then
    return wrk.format("GET", "/v1/customers/c" .. math.random(0, customers - 1) ..
                      "/recommendations?k=10", auth)
  elseif route == "similar" then
    return wrk.format("GET", "/v1/products/p" .. math.random(0, products - 1) .. "/similar?k=10")
  elseif route == "audience" then
    return wrk.format("GET", "/v1/products/p" .. math.random(0, products - 1) ..
                      "/audience?limit=1000", auth)
  elseif route == "events" then
    -- A batch of 100 purchases by random customers; fresh event ids, so every one is stored
    -- and folded in.
    counter = counter + 1
    local parts = {}
    for i = 1, 100 do
      parts[i] = string.format(
        '{"customer":"c%d","product":"p%d","time":1767225600,"event_id":"load-%d-%d-%d"}',
        math.random(0, customers - 1), math.random(0, products - 1), seed, counter, i)
    end
    return wrk.format("POST", "/v1/events",
                      {["Content-Type"] = "application/json",
                       ["Authorization"] = "Bearer " .. key},
                      '{"events":[' .. table.concat(parts, ",") .. ']}')
  end
  return wrk.format("GET", "/healthz")
end

-- wrk counts non-2xx answers itself ("Non-2xx or 3xx responses"). A response() callback makes
-- wrk copy every body into Lua, which costs wrk (sharing the server's cores) real CPU on 100 KB
-- audiences, so it is defined only on request (SHOW_ERRORS=1) to print the failing bodies.
if os.getenv("SHOW_ERRORS") == "1" then
  response = function(status, headers, body)
    if status >= 300 then
      io.stderr:write("status " .. status .. ": " .. body .. "\n")
    end
  end
end
