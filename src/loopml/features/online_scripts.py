"""The Lua scripts of the Redis online state (see :mod:`loopml.features.online_redis` for the layout).

Each runs atomically on the server, so no other replica's update interleaves with a request's.
"""

from __future__ import annotations

__all__ = ["ADVANCE", "LEARN", "OBSERVE_READ", "RELEASE"]

_COMMON = """
local ns = ARGV[1]
local n, g, horizon, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local mode, need_warm = ARGV[6], ARGV[7] == '1'
if need_warm and redis.call('EXISTS', ns .. ':warm') == 0 then
  return redis.error_reply('LOOPML_COLD')
end
local base, width = 7, 2 + 4 * g
local touched = {}
local function trim(z, v)
  local newest = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  if #newest == 0 then return end
  local cutoff = tonumber(newest[2]) - horizon
  local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if tonumber(oldest[2]) < cutoff then
    local bound = '(' .. string.format('%.0f', cutoff)
    local gone = redis.call('ZRANGEBYSCORE', z, '-inf', bound)
    redis.call('ZREMRANGEBYSCORE', z, '-inf', bound)
    for j = 1, #gone, 4000 do
      redis.call('HDEL', v, unpack(gone, j, math.min(j + 3999, #gone)))
    end
  end
  redis.call('PEXPIRE', z, ttl)
  redis.call('PEXPIRE', v, ttl)
end
local function names(at, s)
  local key = ARGV[at + 3 + (s - 1) * 4]
  if key == '' then return nil, nil end
  local prefix = ns .. ':' .. s .. ':'
  return prefix .. 'z:' .. key, prefix .. 'v:' .. key
end
"""

# ARGV: ns, n, g, horizon, ttl, mode ('o' add, 'r' read, 'or' both), need_warm; then per event:
# time, id, and per group: key ('' none), value, window start, window end (exclusive).
OBSERVE_READ = (
    _COMMON
    + """
local added = 0
if string.find(mode, 'o') then
  for i = 0, n - 1 do
    local at = base + i * width
    local fresh = nil
    for s = 1, g do
      local z, v = names(at, s)
      if z then
        local new = redis.call('ZADD', z, 'NX', ARGV[at + 1], ARGV[at + 2])
        if fresh == nil then fresh = (new == 1) end
        if not fresh then break end
        redis.call('HSETNX', v, ARGV[at + 2], ARGV[at + 4 + (s - 1) * 4])
        touched[z] = v
      end
    end
    if fresh then added = added + 1 end
  end
  for z, v in pairs(touched) do trim(z, v) end
end
local out = {added}
if string.find(mode, 'r') then
  for i = 0, n - 1 do
    local at = base + i * width
    for s = 1, g do
      local z, v = names(at, s)
      local hits = {}
      if z then
        local o = at + 3 + (s - 1) * 4
        local found = redis.call('ZRANGEBYSCORE', z, ARGV[o + 2], '(' .. ARGV[o + 3], 'WITHSCORES')
        local ids = {}
        for j = 1, #found, 2 do ids[#ids + 1] = found[j] end
        for j = 1, #ids, 4000 do
          local values = redis.call('HMGET', v, unpack(ids, j, math.min(j + 3999, #ids)))
          for k = 1, #values do
            hits[#hits + 1] = found[2 * (j + k - 1)]
            hits[#hits + 1] = values[k] or 'nan'
          end
        end
      end
      out[#out + 1] = table.concat(hits, ' ')
    end
  end
end
return out
"""
)

# Same ARGV; per event: known events take each non-NaN value, unknown ones are added with theirs.
LEARN = (
    _COMMON
    + """
local changed = 0
for i = 0, n - 1 do
  local at = base + i * width
  local id = ARGV[at + 2]
  local known = nil
  for s = 1, g do
    local z = names(at, s)
    if z and known == nil then known = redis.call('ZSCORE', z, id) ~= false end
  end
  local learnt = false
  for s = 1, g do
    local z, v = names(at, s)
    local value = ARGV[at + 4 + (s - 1) * 4]
    if z and known then
      if value ~= 'nan' and redis.call('ZSCORE', z, id) ~= false and redis.call('HGET', v, id) ~= value then
        redis.call('HSET', v, id, value)
        changed = changed + 1
      end
    elseif z then
      redis.call('ZADD', z, 'NX', ARGV[at + 1], id)
      if value ~= 'nan' then
        redis.call('HSET', v, id, value)
        learnt = true
      else
        redis.call('HSETNX', v, id, value)
      end
      touched[z] = v
    end
  end
  if learnt then changed = changed + 1 end
end
for z, v in pairs(touched) do trim(z, v) end
return changed
"""
)

ADVANCE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
