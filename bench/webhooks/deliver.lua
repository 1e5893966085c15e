-- wrk script: posts precomputed signed deliveries (fb_webhook_bench_gen), each webhook-id once.
--   wrk -t2 -c32 -d10s --latency -s deliver.lua http://127.0.0.1:PORT -- PATH DIR THREADS
-- Each wrk thread takes every THREADS-th line of DIR/requests.txt, so no two threads send the same
-- webhook-id. When a thread runs out it starts over (the receiver then answers "duplicate": the
-- bench server's report counts them; size --count so that it does not happen).
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function init(args)
  local path, dir, nthreads = args[1], args[2], tonumber(args[3] or "1")
  local bodies = {}
  local k = 0
  while true do
    local f = io.open(dir .. "/body_" .. k .. ".json", "rb")
    if not f then break end
    bodies[k] = f:read("*a")
    f:close()
    k = k + 1
  end
  heads, which, body_of = {}, {}, bodies
  local i = 0
  for line in io.lines(dir .. "/requests.txt") do
    if i % nthreads == tid then
      local id, ts, sig, b = line:match("^(%S+) (%S+) (%S+) (%d+)$")
      local body = bodies[tonumber(b)]
      heads[#heads + 1] = "POST " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
          "Content-Type: application/json\r\nUser-Agent: Svix-Webhooks/1.81.0\r\n" ..
          "Content-Length: " .. #body .. "\r\nwebhook-id: " .. id .. "\r\nwebhook-timestamp: " .. ts ..
          "\r\nwebhook-signature: " .. sig .. "\r\n\r\n"
      which[#which + 1] = tonumber(b)
    end
    i = i + 1
  end
  n = 0
end

function request()
  n = n + 1
  if n > #heads then n = 1 end
  return heads[n] .. body_of[which[n]]
end
