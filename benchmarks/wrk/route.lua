-- wrk script for serve_load.sh: one route, random ids. Environment:
--   ROUTE      recommendations | similar | audience | events
--   CUSTOMERS  PRODUCTS   id ranges of the synthetic shop (ids c0.., p0..)
--   API_KEY    write key (events)
local route = os.getenv("ROUTE")
local customers = tonumber(os.getenv("CUSTOMERS"))
local products = tonumber(os.getenv("PRODUCTS"))
local key = os.getenv("API_KEY") or ""
local counter = 0

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed)
end

request = function()
  if route == "recommendations" then
    return wrk.format("GET", "/v1/customers/c" .. math.random(0, customers - 1) ..
                      "/recommendations?k=10")
  elseif route == "similar" then
    return wrk.format("GET", "/v1/products/p" .. math.random(0, products - 1) .. "/similar?k=10")
  elseif route == "audience" then
    return wrk.format("GET", "/v1/products/p" .. math.random(0, products - 1) ..
                      "/audience?limit=1000")
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

-- Non-2xx answers are errors in the report.
response = function(status, headers, body)
  if status >= 300 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end
