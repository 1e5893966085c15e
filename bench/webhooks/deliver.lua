-- wrk script: posts precomputed signed deliveries (fb_webhook_bench_gen), each webhook-id once.
--   wrk -t2 -c32 -d10s --latency -s deliver.lua http://127.0.0.1:PORT -- PATH DIR THREADS
-- Each delivery is body_<k>.pre .. recording_id .. body_<k>.post, signed by the generator. Each wrk
-- thread takes every THREADS-th line of DIR/requests.txt, so no two threads send the same
-- webhook-id. When a thread runs out it starts over (the receiver then answers "duplicate": the
-- bench server's report counts them; size --count so that it does not happen).
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

local function slurp(name)
  local f = io.open(name, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function init(args)
  local path, dir, nthreads = args[1], args[2], tonumber(args[3] or "1")
  pre, post = {}, {}
  local k = 0
  while true do
    local p = slurp(dir .. "/body_" .. k .. ".pre")
    if not p then break end
    pre[k], post[k] = p, slurp(dir .. "/body_" .. k .. ".post")
    k = k + 1
  end
  heads, which, rids = {}, {}, {}
  local i = 0
  for line in io.lines(dir .. "/requests.txt") do
    if i % nthreads == tid then
      local id, ts, sig, b, rid = line:match("^(%S+) (%S+) (%S+) (%d+) (%d+)$")
      b = tonumber(b)
      heads[#heads + 1] = "POST " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
          "Content-Type: application/json\r\nUser-Agent: Svix-Webhooks/1.81.0\r\n" ..
          "Content-Length: " .. (#pre[b] + #rid + #post[b]) .. "\r\nwebhook-id: " .. id ..
          "\r\nwebhook-timestamp: " .. ts .. "\r\nwebhook-signature: " .. sig .. "\r\n\r\n"
      which[#which + 1] = b
      rids[#rids + 1] = rid
    end
    i = i + 1
  end
  n = 0
end

function request()
  n = n + 1
  if n > #heads then n = 1 end
  local b = which[n]
  return heads[n] .. pre[b] .. rids[n] .. post[b]
end
