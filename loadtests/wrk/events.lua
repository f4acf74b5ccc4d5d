-- Events for the ingest scenarios: each thread walks its own contacts through call.offered,
-- call.answered and call.ended across four queues, so every event id is new and the window sees whole
-- lifecycles rather than a pile of callers who wait forever.
local M = {}

local queues = { "borgerservice", "pas-koerekort", "skat", "ydelser" }
local types = { "call.offered", "call.answered", "call.ended" }

function M.event(run, thread_id, n, stamp)
   local contact = math.floor(n / 3)
   local step = n % 3 + 1
   local queue = queues[contact % #queues + 1]
   local extra = ""
   if step == 2 then
      extra = ', "agent": "agent-' .. (contact % 40) .. '"'
   elseif step == 3 then
      extra = ', "resolved": true'
   end
   return string.format(
      '{"event_id": "%s-%d-%d", "type": "%s", "contact_id": "%s-%d-c%d", "queue": "%s", '
         .. '"occurred_at": "%s"%s}',
      run, thread_id, n, types[step], run, thread_id, contact, queue, stamp, extra)
end

return M
