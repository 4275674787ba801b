-- wrk script for make bench: POST a fixture with a unique callSid per
-- request, and print one machine-readable line when the run is done.
--
-- Usage: wrk ... -s bench/post.lua URL -- FIXTURE [RATE]
--
-- RATE > 0 paces the thread's connections together at RATE requests a
-- second (make bench runs one thread): each request takes the next slot
-- of a schedule 1/RATE apart, and delay() waits until its slot. The slots
-- are absolute times, so the pause of each request does not add up with
-- the response's latency or the lateness of wrk's millisecond timers, and
-- the offered rate is RATE for as long as a connection is free. Slots
-- missed by up to CATCH_UP_MS (answers handled late by the busy client
-- thread) are sent at once; a schedule further behind (a stall) restarts
-- from CATCH_UP_MS ago rather than firing every missed slot. Without
-- that catching up, a 80 % pace offered 74 %. wrk's delay() takes whole
-- milliseconds: the pause is a random mix of the two nearest.
--
-- The request is built once per thread as three strings: the request
-- head and the body up to the callSid's value, the value, and the rest of
-- the body. Each request() is then one string.format and one
-- concatenation (LuaJIT), about a microsecond, so the client stays far
-- from being the bottleneck even for the 9 KB payload (bench/run prints
-- wrk's CPU use to prove it). The callSid is fixed-width, so the
-- Content-Length never changes.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]]
local CLOCK_MONOTONIC = 1
local CATCH_UP_MS = 5
local ts = ffi.new("bench_timespec")

local function now_ms()
	ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
	return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local thread_seq = 0

function setup(thread)
	thread_seq = thread_seq + 1
	thread:set("tid", thread_seq)
	table.insert(threads, thread)
end

local head, tail
sent = 0	-- global: done() reads it with thread:get()

function init(args)
	local path = args[1]
	local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
	local body = f:read("*a")
	f:close()
	local _, _, vs, ve = body:find('"callSid"%s*:%s*"()[^"]*()"')
	assert(vs, path .. ": no callSid")
	local before, after = body:sub(1, vs - 1), body:sub(ve)
	-- "bench-TT-NNNNNNNNNN": thread and counter, 19 bytes.
	local len = #before + 19 + #after
	local url = wrk.path
	head = "POST " .. url .. " HTTP/1.1\r\n" ..
	    "Host: " .. wrk.host .. ":" .. wrk.port .. "\r\n" ..
	    "Content-Type: application/json\r\n" ..
	    "Content-Length: " .. len .. "\r\n\r\n" .. before
	tail = after
	prefix = string.format("bench-%02d-", tid)
	local rate = tonumber(args[2] or "0") or 0
	if rate > 0 then
		local period = 1000 / rate
		local slot = now_ms()
		delay = function()
			local now = now_ms()
			slot = slot + period
			if slot < now - CATCH_UP_MS then
				slot = now - CATCH_UP_MS
			end
			if slot <= now then
				return 0
			end
			local wait = slot - now
			local lo = math.floor(wait)
			if math.random() < wait - lo then
				return lo + 1
			end
			return lo
		end
	end
end

function request()
	sent = sent + 1
	return head .. prefix .. string.format("%010d", sent) .. tail
end

function done(summary, latency, requests)
	local total = 0
	for _, t in ipairs(threads) do
		total = total + t:get("sent")
	end
	local e = summary.errors
	io.write(string.format(
	    "BENCH responses=%d non2xx=%d sent=%d duration_us=%d " ..
	    "p50_us=%d p99_us=%d max_us=%d errors=%d\n",
	    summary.requests, e.status, total, summary.duration,
	    latency:percentile(50), latency:percentile(99), latency.max,
	    e.connect + e.read + e.write + e.timeout))
end
