-- bucket.py's arithmetic in Lua, run by Redis: one script per QuotaStore operation.
--
-- redis_store.py prepends the constants (MIN_REQUEST_BUCKET_CAPACITY, RATE_DECREASE,
-- REPEATED_429_SECONDS, LOW_LIMIT_PER_MINUTE, LOW_LIMIT_PACE, LAYOUT_VERSION, REFUND_TOKEN_MS)
-- and appends one line, "return OP()", per operation.
-- The state is bucket.py's layout (1-based here) packed with cmsgpack (float64, exact), then
-- ORIGIN and INCARNATION: the Redis second the state was made (times are kept relative to it, so
-- they stay small and precise) and its microsecond (the two name this incarnation of the state:
-- a waiter who reserved in a state that has since been lost must reserve again).
--
-- KEYS[1] the state; KEYS[2] (give back, cancel) the refund's token.
-- ARGV[1] now ("" = Redis's TIME); ARGV[2..6] the configured requests, tokens, input_tokens,
-- output_tokens per minute (0 = none) and burst_seconds; ARGV[7] probe_seconds; ARGV[8] the
-- idle expiry in ms; ARGV[9..] the operation's own arguments.
-- Every float leaves as a string ("%.17g"): Redis would truncate a Lua number to an integer.

local LAYOUT, PAUSED_UNTIL, PAUSES, WAITERS, ADMITTED, SHIFT = 1, 2, 3, 4, 5, 6
local PROBE_UNTIL, PROBE_SECONDS, EPISODES, BURST_SECONDS = 7, 8, 9, 10
local SLOTS = 30
local ORIGIN, INCARNATION = 31, 32
local RATE, CAPACITY, TAT, LIMIT, CONFIGURED = 0, 1, 2, 3, 4
local BASES = {11, 16, 21, 26}
local TIME_EPSILON = 1e-9
local LIMIT_TOLERANCE = 1 + 1e-9
local INF = math.huge

local function str(x)
    return string.format('%.17g', x)
end

local function arg_number(i)
    return tonumber(ARGV[i])
end

-- --- levels and limits (bucket.level, set_level, capacity_for, _set_pace, ...) ---

local function level(s, i, now)
    local base = BASES[i]
    local rate = s[base + RATE]
    if rate <= 0 then return INF end
    now = math.max(now, s[PAUSED_UNTIL])
    return s[base + CAPACITY] - rate * math.max(0, s[base + TAT] - now)
end

local function set_level(s, i, value, now)
    local base = BASES[i]
    local capacity = s[base + CAPACITY]
    now = math.max(now, s[PAUSED_UNTIL])
    s[base + TAT] = now + (capacity - math.min(value, capacity)) / s[base + RATE]
end

local function finite(x)
    return x == x and x ~= INF and x ~= -INF
end

local function lower_level(s, i, remaining, now)
    if finite(remaining) and remaining >= 0 and s[BASES[i] + RATE] > 0
        and level(s, i, now) > remaining then
        set_level(s, i, remaining, now)
    end
end

local function capacity_for(i, per_minute, burst)
    local capacity = per_minute / 60 * burst
    if i == 1 then capacity = math.max(capacity, MIN_REQUEST_BUCKET_CAPACITY) end
    return capacity
end

local function set_pace(s, i, per_minute, now)
    local base = BASES[i]
    local current = level(s, i, now)
    local spent = 0
    if finite(current) then spent = s[base + CAPACITY] - current end
    s[base + RATE] = per_minute / 60
    s[base + CAPACITY] = capacity_for(i, per_minute, s[BURST_SECONDS])
    set_level(s, i, s[base + CAPACITY] - spent, now)
end

local function set_limit(s, i, per_minute, now)
    s[BASES[i] + LIMIT] = per_minute
    set_pace(s, i, per_minute, now)
end

local function learned_pace(i, per_minute)
    if i == 1 and per_minute < LOW_LIMIT_PER_MINUTE then return per_minute * LOW_LIMIT_PACE end
    return per_minute
end

local function learn_limit(s, i, per_minute, now)
    if not (finite(per_minute) and per_minute > 0) then return end
    local base = BASES[i]
    local configured = s[base + CONFIGURED]
    local target = per_minute
    if configured ~= 0 then target = math.min(per_minute, configured) end
    if target ~= s[base + LIMIT] then
        s[base + LIMIT] = target
        set_pace(s, i, learned_pace(i, target), now)
    end
end

local function slow_down(s, now)
    for i = 1, 4 do
        local rate = s[BASES[i] + RATE]
        if rate > 0 then set_pace(s, i, rate * 60 * RATE_DECREASE, now) end
    end
end

local function heard(s)
    s[PROBE_UNTIL] = 0
end

-- --- the state: made, read, written ---

-- bucket.initial_state; empty: every bucket starts at level 0 (the state was lost, so what was
-- spent just before is unknown: no burst), slow start armed by probe_seconds either way.
local function initial(now, origin, micro, empty)
    local s = {}
    for slot = 1, SLOTS do s[slot] = 0 end
    local probe = arg_number(7)
    if probe > 0 then
        s[PROBE_UNTIL] = INF
        s[PROBE_SECONDS] = probe
    end
    s[BURST_SECONDS] = arg_number(6)
    for i = 1, 4 do
        local per_minute = arg_number(1 + i)
        if per_minute > 0 then
            s[BASES[i] + CONFIGURED] = per_minute
            set_limit(s, i, per_minute, now)
            if empty then set_level(s, i, 0, now) end
        end
    end
    s[LAYOUT] = LAYOUT_VERSION
    s[ORIGIN] = origin
    s[INCARNATION] = micro
    return s
end

-- The state and the store's now; a missing state (never made, expired idle, or lost with a
-- Redis restart) is made empty.
local function load()
    local raw = redis.call('GET', KEYS[1])
    local clock = nil
    if ARGV[1] ~= '' then clock = tonumber(ARGV[1]) end
    if raw then
        local s = cmsgpack.unpack(raw)
        if s[LAYOUT] ~= LAYOUT_VERSION then
            error('LLM_API_CLIENT_LAYOUT ' .. str(s[LAYOUT] or 0))
        end
        if clock then return s, clock end
        local t = redis.call('TIME')
        return s, (tonumber(t[1]) - s[ORIGIN]) + tonumber(t[2]) / 1e6
    end
    local t = redis.call('TIME')
    local now = clock or tonumber(t[2]) / 1e6
    return initial(now, tonumber(t[1]), tonumber(t[2]), true), now
end

local function save(s)
    redis.call('SET', KEYS[1], cmsgpack.pack(s), 'PX', ARGV[8])
end

local function incarnation(s)
    return string.format('%d.%06d', s[ORIGIN], s[INCARNATION])
end

local function publish(s)
    redis.call('PUBLISH', KEYS[1] .. ':news', incarnation(s) .. ' ' .. str(s[SHIFT]))
end

-- What every reply ends with: the state's incarnation and shift (heals a missed message).
local function news(s, reply)
    reply[#reply + 1] = incarnation(s)
    reply[#reply + 1] = str(s[SHIFT])
    return reply
end

-- --- slow start ---

local function probe_hold(s, now)
    local until_ = s[PROBE_UNTIL]
    if until_ == INF then return 0 end
    if until_ <= now then
        heard(s)
        return 0
    end
    return until_ - now
end

-- --- the operations ---

local function reserve_at(s, costs, now, max_delay)
    local at = s[PAUSED_UNTIL]
    if at < now then at = now end
    local used = {}
    for i = 1, 4 do
        local cost = costs[i]
        local base = BASES[i]
        if cost > 0 and s[base + RATE] > 0 then
            local rate = s[base + RATE]
            if cost > s[base + LIMIT] * LIMIT_TOLERANCE then
                return nil, {'too_large', tostring(i - 1), str(cost), str(s[base + LIMIT])}
            end
            local spare = s[base + CAPACITY] - cost
            if spare < 0 then spare = 0 end
            local turn = s[base + TAT] - spare / rate
            if turn > at then at = turn end
            used[#used + 1] = {base + TAT, cost / rate}
        end
    end
    if at - now < TIME_EPSILON then
        at = now
    elseif max_delay and at - now > max_delay then
        return nil, {'late', str(at - now)}
    end
    for _, step in ipairs(used) do
        local tat = s[step[1]]
        if tat < at then tat = at end
        s[step[1]] = tat + step[2]
    end
    s[ADMITTED] = s[ADMITTED] + 1
    return at, nil
end

local function costs_arg(first)
    return {arg_number(first), arg_number(first + 1), arg_number(first + 2),
            arg_number(first + 3)}
end

-- ARGV[9..12] costs, ARGV[13] max_delay ("" = none), ARGV[14] waiters of this incarnation
-- (ARGV[15]) admitted since without a claim (they knew of no pause): no longer counted.
-- Reply: {'turn', wait, held (0/1), episodes, incarnation, shift} or a refusal.
local function reserve()
    local s, now = load()
    if incarnation(s) == ARGV[15] then s[WAITERS] = s[WAITERS] - arg_number(14) end
    local max_delay = nil
    if ARGV[13] ~= '' then max_delay = tonumber(ARGV[13]) end
    if s[PROBE_UNTIL] ~= 0 then
        local hold = probe_hold(s, now)
        if hold > 0 then
            save(s)
            return news(s, {'turn', str(hold), '1', str(s[EPISODES])})
        end
    end
    local at, refused = reserve_at(s, costs_arg(9), now, max_delay)
    if refused then
        save(s)  -- a refusal takes nothing, but slow start may have ended above
        return refused
    end
    if s[PROBE_UNTIL] == INF then s[PROBE_UNTIL] = at + s[PROBE_SECONDS] end
    local wait = 0
    if at > now then
        s[WAITERS] = s[WAITERS] + 1
        wait = at - now
    end
    save(s)
    return news(s, {'turn', str(wait), '0', str(s[EPISODES])})
end

-- ARGV[9] shift, ARGV[10] the waiter's incarnation. Reply: {'lost'} when the state the turn
-- was reserved in is gone, else {incarnation, shift}.
local function claim_turn()
    local s = load()
    if incarnation(s) ~= ARGV[10] then
        save(s)
        return {'lost'}
    end
    if s[SHIFT] == tonumber(ARGV[9]) then
        s[WAITERS] = s[WAITERS] - 1
    end
    save(s)
    return news(s, {})
end

local function give_back_costs(s, costs, now)
    now = math.max(now, s[PAUSED_UNTIL])
    for i = 1, 4 do
        local base = BASES[i]
        local rate = s[base + RATE]
        if costs[i] > 0 and rate > 0 then
            s[base + TAT] = math.max(now, s[base + TAT] - costs[i] / rate)
        end
    end
end

-- A refund or a cancel runs once per token (KEYS[2]), so a retry after a lost reply is harmless.
local function first_time()
    return redis.call('SET', KEYS[2], '1', 'NX', 'PX', REFUND_TOKEN_MS)
end

-- ARGV[9..12] costs.
local function give_back()
    local s, now = load()
    if first_time() then give_back_costs(s, costs_arg(9), now) end
    save(s)
    return news(s, {})
end

-- ARGV[9..12] costs, ARGV[13] the waiter's incarnation (a lost state never charged it).
local function cancel_turn()
    local s, now = load()
    if incarnation(s) == ARGV[13] and first_time() then
        give_back_costs(s, costs_arg(9), now)
        s[WAITERS] = s[WAITERS] - 1
    end
    save(s)
    return news(s, {})
end

-- ARGV[9] seconds, ARGV[10] episode ("" = unknown).
local function pause()
    local s, now = load()
    local seconds = tonumber(ARGV[9])
    local was_probing = s[PROBE_UNTIL] ~= 0
    local shift = s[SHIFT]
    s[PAUSES] = s[PAUSES] + 1
    heard(s)
    if ARGV[10] ~= '' and tonumber(ARGV[10]) >= s[EPISODES] then
        local repeated = s[EPISODES] > 0 and now - s[PAUSED_UNTIL] <= REPEATED_429_SECONDS
        s[EPISODES] = s[EPISODES] + 1
        if repeated then slow_down(s, now) end
    end
    if finite(seconds) and seconds > 0 then
        local start = math.max(now, s[PAUSED_UNTIL])
        local extension = now + seconds - start
        if extension > 0 then
            s[PAUSED_UNTIL] = now + seconds
            s[SHIFT] = s[SHIFT] + extension
            for i = 1, 4 do
                local base = BASES[i]
                if s[base + RATE] > 0 then
                    s[base + TAT] = math.max(s[base + TAT], start) + extension
                end
            end
        end
    end
    save(s)
    if was_probing or s[SHIFT] ~= shift then publish(s) end
    return news(s, {})
end

-- ARGV[9..12] limits, ARGV[13..16] remaining, by bucket ("" = not stated).
local function learn()
    local s, now = load()
    local was_probing = s[PROBE_UNTIL] ~= 0
    for i = 1, 4 do
        if ARGV[8 + i] ~= '' then learn_limit(s, i, tonumber(ARGV[8 + i]), now) end
    end
    for i = 1, 4 do
        if ARGV[12 + i] ~= '' then lower_level(s, i, tonumber(ARGV[12 + i]), now) end
    end
    heard(s)
    save(s)
    if was_probing then publish(s) end
    return news(s, {})
end

-- Make the state full if it is missing. Reply: the state's configuration (layout, burst, each
-- bucket's configured limit), for the caller to compare with its own.
local function init()
    local raw = redis.call('GET', KEYS[1])
    local s
    if raw then
        s = cmsgpack.unpack(raw)
        if s[LAYOUT] ~= LAYOUT_VERSION then return {str(s[LAYOUT] or 0)} end
        redis.call('PEXPIRE', KEYS[1], ARGV[8])
    else
        local t = redis.call('TIME')
        local now = tonumber(t[2]) / 1e6
        if ARGV[1] ~= '' then now = tonumber(ARGV[1]) end
        s = initial(now, tonumber(t[1]), tonumber(t[2]), false)
        save(s)
    end
    local reply = {str(s[LAYOUT]), str(s[BURST_SECONDS])}
    for i = 1, 4 do reply[#reply + 1] = str(s[BASES[i] + CONFIGURED]) end
    return reply
end

-- Reply: now, then the SLOTS of the state (bucket.snapshot runs on them in Python).
local function snapshot()
    local s, now = load()
    save(s)
    local reply = {str(now)}
    for slot = 1, SLOTS do reply[#reply + 1] = str(s[slot]) end
    return news(s, reply)
end
