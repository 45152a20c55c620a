-- scripts/bench/patch.lua — PATCH /customer/change-status of a random
-- preloaded customer (each thread walks its own shuffled share, flipping
-- each customer's status, so no request answers 409), with the bench
-- consumer's key.
dofile(os.getenv("FINTEGRATE_BENCH_LUA_DIR") .. "/common.lua")

local ids, pos, inactive
function init(args)
    ids = bench.my_customers()
    pos = 0
    inactive = {}
end

function request()
    pos = pos % #ids + 1
    local i = ids[pos]
    inactive[i] = not inactive[i]
    return wrk.format("PATCH", "/customer/change-status", bench.headers,
        string.format('{"customer_id":"%s","status":"%s"}', bench.id(i),
                      inactive[i] and "INACTIVE" or "ACTIVE"))
end
