-- GET the URL given on the command line (e.g. /v1/kpis or the /bench/bytes ceiling), with a read token
-- when QUEUEPULSE_READ_TOKEN is set.
--   wrk -t1 -c50 -d10s -s loadtests/wrk/get.lua http://127.0.0.1:8000/v1/kpis
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local token = os.getenv("QUEUEPULSE_READ_TOKEN")
if token and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
end
