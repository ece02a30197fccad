-- wrk script for scripts/bench-http: one run that alternates /health and another request
-- on the same server in short phases, so that both see the same machine.
--
-- The machine's speed drifts by tens of percent from one second to the next, so two runs
-- of a second each, side by side, still differ by that much. Here the phases are
-- PHASE_MS long (50 ms by default) and come in the order A B B A (A is /health, B the
-- request under test); a pair is two neighbouring phases, so each order comes equally
-- often. Each thread counts the requests it sends from GUARD_MS (10 ms) into a phase to
-- its end: by then every connection's request in flight is of the phase's kind, and in a
-- closed loop a connection sends one request per response, so the count is the phase's
-- throughput. The printout is one line per phase: `phase N A|B COUNT`, the counts summed
-- over the threads (wall-clock phases, CLOCK_MONOTONIC, the same for every thread).
--
--   ALT_PATH=/me ALT_TOKEN=... wrk -t2 -c32 -d20s -s scripts/alternate.lua http://127.0.0.1:PORT
--
-- Every request goes through `request()`, /health's too, so wrk does the same work per
-- request for both kinds.
local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } alternate_timespec;
  int clock_gettime(int clock, alternate_timespec *ts);
]])
local CLOCK_MONOTONIC = 1
local now = ffi.new("alternate_timespec")
local PHASE_MS = tonumber(os.getenv("PHASE_MS") or "50")
local GUARD_MS = tonumber(os.getenv("GUARD_MS") or "10")

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local requests
-- Per thread, read by done(): requests sent in each phase, by phase number.
counts = {}

function init(args)
  local path = os.getenv("ALT_PATH") or error("ALT_PATH is not set")
  local token = os.getenv("ALT_TOKEN") or ""
  local headers = {}
  if token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  requests = {
    A = wrk.format("GET", "/health"),
    B = wrk.format("GET", path, headers),
  }
end

local function kind(phase)
  local k = phase % 4
  if k == 0 or k == 3 then
    return "A"
  end
  return "B"
end

function request()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now)
  local ms = tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
  local phase = math.floor(ms / PHASE_MS)
  if ms - phase * PHASE_MS >= GUARD_MS then
    counts[phase] = (counts[phase] or 0) + 1
  end
  return requests[kind(phase)]
end

function done()
  local total = {}
  for _, thread in ipairs(threads) do
    for phase, n in pairs(thread:get("counts")) do
      total[phase] = (total[phase] or 0) + n
    end
  end
  local phases = {}
  for phase in pairs(total) do
    table.insert(phases, phase)
  end
  table.sort(phases)
  for _, phase in ipairs(phases) do
    io.write(string.format("phase %d %s %d\n", phase, kind(phase), total[phase]))
  end
end
