-- scripts/bench/common.lua — shared by the wrk scripts of scripts/bench.sh
-- (loaded with dofile; wrk runs one Lua state per thread).
--
-- Environment (set by bench.sh):
--   FINTEGRATE_BENCH_KEY        the X-API-Key of the bench consumer (only
--                               ever put into a request header)
--   FINTEGRATE_BENCH_CUSTOMERS  how many preloaded customers (1..N)
--   FINTEGRATE_BENCH_ID_PREFIX  their ids are PREFIX .. %012d of 1..N
--   FINTEGRATE_BENCH_THREADS    wrk's -t (customers are split by thread)
--
-- done() prints one machine-readable line that bench.sh parses:
--   BENCH requests=.. duration_us=.. non2xx=.. errors=.. p50_us=.. p99_us=..

bench = {}
bench.key = os.getenv("FINTEGRATE_BENCH_KEY")
bench.customers = tonumber(os.getenv("FINTEGRATE_BENCH_CUSTOMERS") or "0")
bench.prefix = os.getenv("FINTEGRATE_BENCH_ID_PREFIX") or ""
bench.threads = tonumber(os.getenv("FINTEGRATE_BENCH_THREADS") or "1")
bench.headers = {
    ["X-API-Key"] = bench.key,
    ["Content-Type"] = "application/json",
}

local next_tid = 0
function setup(thread)
    thread:set("tid", next_tid)
    next_tid = next_tid + 1
end

function bench.id(i)
    return string.format("%s%012d", bench.prefix, i)
end

-- This thread's customers (i mod threads == tid), shuffled: a random
-- preloaded customer per request, and no customer twice in flight.
function bench.my_customers()
    local t = tid or 0
    local ids = {}
    for i = 1, bench.customers do
        if i % bench.threads == t then
            ids[#ids + 1] = i
        end
    end
    math.randomseed(os.time() * 7919 + t)
    for i = #ids, 2, -1 do
        local j = math.random(i)
        ids[i], ids[j] = ids[j], ids[i]
    end
    return ids
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d\n",
        summary.requests, summary.duration, e.status,
        e.connect + e.read + e.write + e.timeout,
        latency:percentile(50), latency:percentile(99)))
end
