-- POST events to the URL given on the command line: one event per request, or BATCH_SIZE events as a
-- JSON array when that variable is set. Aimed at /bench/parse it measures the no-persistence ceiling.
--   BENCH_RUN_ID=r1 wrk -t2 -c64 -d10s -s loadtests/wrk/ingest.lua http://127.0.0.1:8000/v1/events
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
local events = dofile(here .. "events.lua")

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

local run, batch, counter, headers

function init(args)
   -- A fresh run id per invocation keeps event ids unique across runs against the same database.
   run = os.getenv("BENCH_RUN_ID") or tostring(os.time())
   batch = tonumber(os.getenv("BATCH_SIZE") or "0")
   counter = 0
   headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. (os.getenv("QUEUEPULSE_INGEST_TOKEN") or "bench-ingest-token"),
   }
end

function request()
   local stamp = os.date("!%Y-%m-%dT%H:%M:%SZ")
   local body
   if batch > 0 then
      local items = {}
      for i = 1, batch do
         items[i] = events.event(run, thread_id, counter, stamp)
         counter = counter + 1
      end
      body = "[" .. table.concat(items, ",") .. "]"
   else
      body = events.event(run, thread_id, counter, stamp)
      counter = counter + 1
   end
   return wrk.format("POST", nil, headers, body)
end
