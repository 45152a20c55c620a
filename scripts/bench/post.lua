-- scripts/bench/post.lua — POST /customer/data (a new customer and its
-- creation event, published inline) with the bench consumer's key.
dofile(os.getenv("FINTEGRATE_BENCH_LUA_DIR") .. "/common.lua")

local n = 0
function request()
    n = n + 1
    return wrk.format("POST", "/customer/data", bench.headers,
        string.format('{"name":"Bench Customer %d-%d","status":"ACTIVE"}',
                      tid or 0, n))
end
