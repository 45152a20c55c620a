-- scripts/bench/get.lua — GET /customer/data of a random preloaded customer
-- (with its tags), with the bench consumer's key.
dofile(os.getenv("FINTEGRATE_BENCH_LUA_DIR") .. "/common.lua")

local ids, pos
function init(args)
    ids = bench.my_customers()
    pos = 0
end

function request()
    pos = pos % #ids + 1
    return wrk.format("GET", "/customer/data?customer_id=" .. bench.id(ids[pos]),
                      bench.headers)
end
