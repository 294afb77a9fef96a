"""The Lua side of the scripting engine: sandbox, ``redis`` API and library wrappers.

:data:`PRELUDE` runs once in every fresh Lua runtime. It receives the Python callbacks
as chunk arguments and returns the internal functions the engine drives (``run``,
``compile``…). Everything it needs later is captured in local variables (upvalues),
so nothing a script can reach (globals, library tables) changes how the engine
behaves for the next script.

The sandbox follows Redis 7:

* globals: base library (minus ``dofile``/``loadfile``/``print``, and minus
  ``getfenv``/``setfenv``/``newproxy`` as in Redis 7.0.15 and 7.2.7), ``string``,
  ``table``, ``math``, ``coroutine``, ``cjson``, ``bit``, ``cmsgpack``, ``redis``; no ``io``,
  ``os``, ``package``/``require``/``module``, ``debug`` or ``python``;
* the global table and every library table are read-only ("Attempt to modify a
  readonly table"), and reading an unknown global is an error ("Script attempted to
  access nonexistent global variable 'x'"). Standard Lua 5.1 has no read-only
  tables, so the libraries are empty proxies; ``pairs``, ``next``, ``rawget`` and
  ``rawset`` are taught to see through (or refuse) them;
* ``loadstring``/``load`` refuse precompiled bytecode (a known Lua 5.1 escape);
* a count hook on the main thread and on every coroutine calls Python (which serves
  other clients once the script is busy, and says whether SCRIPT KILL stopped it);
  once killed, the hook fires on every instruction so a script cannot keep itself
  alive by catching the error with ``pcall``.
"""

from __future__ import annotations

PRELUDE = rb"""
local py_call, py_pcall, py_error_text, py_check, py_log, py_setresp, py_sha1,
      py_encode, py_decode, py_bit, py_acl, REDIS_VERSION, REDIS_VERSION_NUM, HOOK_COUNT,
      py_mp_pack, py_mp_unpack, py_cap = ...

-- Everything used after the sandbox is sealed is captured here.
local type, error, select, tostring, tonumber = type, error, select, tostring, tonumber
local rawget, rawset, next, pairs = rawget, rawset, next, pairs
local setmetatable, unpack, pcall, xpcall = setmetatable, unpack, pcall, xpcall
local raw_loadstring = loadstring
local format, byte, find, sub, gsub = string.format, string.byte, string.find, string.sub, string.gsub
local concat = table.concat
local floor, ceil = math.floor, math.ceil
local gc = collectgarbage
local sethook, getinfo = debug.sethook, debug.getinfo
local co_create, co_resume = coroutine.create, coroutine.resume
local G = _G
local PRELUDE_SOURCE = getinfo(1, 'S').source
local MAX_REPLY_DEPTH = 500

local function pack(...) return {n = select('#', ...), ...} end
local function trunc(n) if n >= 0 then return floor(n) end return ceil(n) end

-- Error tables, as Redis builds them (luaPushErrorBuff).
local function error_table(s)
  local code, msg = 'ERR', s
  if byte(s, 1) == 45 then  -- '-'
    local sp = find(s, ' ', 1, true)
    if sp then code, msg = sub(s, 2, sp - 1), sub(s, sp + 1) else msg = sub(s, 2) end
  end
  msg = gsub(gsub(msg, '^[\r\n]+', ''), '[\r\n]+$', '')
  return {err = code .. ' ' .. msg}
end
local function fail(msg) error(error_table(msg), 0) end

-- The time limit --------------------------------------------------------------------
local hook
hook = function()
  if py_check() then
    sethook(hook, '', 1)
    error({err = 'ERR Script killed by user with SCRIPT KILL...'}, 0)
  end
end

-- Read-only tables --------------------------------------------------------------------
local proxied = setmetatable({}, {__mode = 'k'})  -- proxy -> real table
local function readonly_error() error('Attempt to modify a readonly table', 2) end
-- What getmetatable shows of a read-only table: itself read-only, as in Redis 7
-- (whose patched Lua makes _G, the libraries and their metatables read-only).
local SEALED = setmetatable({}, {__newindex = readonly_error, __metatable = false})
proxied[SEALED] = {}  -- rawset refuses it too
local function readonly(real)
  local p = {}
  proxied[p] = real
  return setmetatable(p, {__index = real, __newindex = readonly_error, __metatable = SEALED})
end

-- redis.* ----------------------------------------------------------------------------
-- redis.call and redis.pcall are the Python callables themselves: to Lua they are C
-- functions, so `return redis.call(...)` keeps the script's frame (a Lua wrapper would
-- be tail-called and the error could not name the script's line). redis.call raises a
-- Python exception that Lua sees as a userdata; as_error_table turns it into the
-- {err=...} table Redis raises.
local function as_error_table(e)
  if type(e) == 'userdata' then
    local msg = py_error_text(e)
    if msg then return {err = msg} end
  end
  return e
end

local redis = {
  call = py_call,
  pcall = py_pcall,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = REDIS_VERSION, REDIS_VERSION_NUM = REDIS_VERSION_NUM,
}

function redis.error_reply(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return error_table('wrong number or type of arguments')
  end
  if byte(s, 1) ~= 45 then s = '-' .. s end
  return error_table(s)
end

function redis.status_reply(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return error_table('wrong number or type of arguments')
  end
  return {ok = s}
end

function redis.sha1hex(...)
  if select('#', ...) ~= 1 then fail('wrong number of arguments') end
  local s = ...
  if type(s) == 'number' then s = tostring(s) elseif type(s) ~= 'string' then s = '' end
  return py_sha1(s)
end

function redis.log(...)
  local n = select('#', ...)
  if n < 2 then fail('redis.log() requires two arguments or more.') end
  local level = tonumber((...))
  if level == nil then fail('First argument must be a number (log level).') end
  level = trunc(level)
  if level < 0 or level > 3 then fail('Invalid debug level.') end
  local parts = {}
  for i = 2, n do
    local v = select(i, ...)
    local t = type(v)
    if t == 'string' or t == 'number' then parts[#parts + 1] = tostring(v) end
  end
  py_log(level, concat(parts, ' '))
end

function redis.setresp(...)
  if select('#', ...) ~= 1 then fail('redis.setresp() requires one argument.') end
  local resp = trunc(tonumber((...)) or 0)
  if resp ~= 2 and resp ~= 3 then fail('RESP version must be 2 or 3.') end
  py_setresp(resp)
end

function redis.set_repl(...)
  if select('#', ...) ~= 1 then fail('redis.set_repl() requires two arguments.') end
  local flags = trunc(tonumber((...)) or 0)
  if flags < 0 or flags > 3 then
    fail('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
  end
end

function redis.replicate_commands() return true end
function redis.breakpoint() return false end
function redis.debug() end

function redis.acl_check_cmd(...)
  local n = select('#', ...)
  if n == 0 then fail('Please specify at least one argument for this redis lib call') end
  local argv = {...}
  for i = 1, n do
    local v = argv[i]
    if type(v) == 'number' then argv[i] = format('%.17g', v)
    elseif type(v) ~= 'string' then
      fail('Lua redis lib command arguments must be strings or integers')
    end
  end
  local known = py_acl(unpack(argv, 1, n))
  if not known then fail('Invalid command passed to redis.acl_check_cmd()') end
  return true
end

-- cjson (the work is done in Python) ---------------------------------------------------
local null = newproxy(false)
local cjson = {null = null}

-- lua-cjson's json_config_t: one per Lua runtime (a new runtime starts from the
-- defaults, as SCRIPT FLUSH does in Redis). Passed to Python on every call.
local enc_depth, enc_precision, enc_invalid = 1000, 14, 0
local sparse_convert, sparse_ratio, sparse_safe = 0, 2, 10
local dec_depth, dec_invalid = 1000, 1
local keep_buffer = 1  -- only chooses whether the encoder reuses its buffer

local INT_MAX = 2147483647
local BOOL_OPTIONS = {[0] = 'off', 'on'}
local INVALID_OPTIONS = {[0] = 'off', 'on', 'null'}

-- json_arg_init: at most n arguments.
local function arg_init(name, n, given)
  if given > n then
    error(format("bad argument #%d to '%s' (found too many arguments)", n + 1, name), 3)
  end
end

-- json_integer_option: luaL_checkinteger (a lua_Integer, then C's int), a range check
-- (whose error always names argument #1, as the C code does).
local function integer_option(name, i, v, current, min, max)
  if v == nil then return current end
  local n = (type(v) == 'number' or type(v) == 'string') and tonumber(v) or nil
  if n == nil then
    error(format("bad argument #%d to '%s' (number expected, got %s)", i, name, type(v)), 3)
  end
  if n ~= n or n >= 9223372036854775808 or n < -9223372036854775808 then
    n = 0  -- (lua_Integer) gives INT64_MIN on x86-64, whose low 32 bits are 0
  else
    n = trunc(n) % 4294967296
    if n >= 2147483648 then n = n - 4294967296 end
  end
  if n < min or n > max then
    error(format("bad argument #1 to '%s' (expected integer between %d and %d)", name, min, max), 3)
  end
  return n
end

-- json_enum_option: a boolean, or one of the option names (luaL_checkoption).
local function enum_option(name, i, v, current, options)
  if v == nil then return current end
  if type(v) == 'boolean' then return v and 1 or 0 end
  if type(v) == 'number' then v = tostring(v)
  elseif type(v) ~= 'string' then
    error(format("bad argument #%d to '%s' (string expected, got %s)", i, name, type(v)), 3)
  end
  local z = find(v, '\0', 1, true)  -- compared as a C string
  if z then v = sub(v, 1, z - 1) end
  for k = 0, #options do
    if options[k] == v then return k end
  end
  error(format("bad argument #%d to '%s' (invalid option '%s')", i, name, v), 3)
end

local function enum_result(setting, options)
  if setting == 0 or setting == 1 then return setting == 1 end
  return options[setting]
end

function cjson.encode(...)
  if select('#', ...) ~= 1 then error("bad argument #1 to 'encode' (expected 1 argument)", 2) end
  local ok, out = py_encode((...), enc_depth, enc_precision, enc_invalid,
                            sparse_convert, sparse_ratio, sparse_safe)
  if not ok then error(out, 2) end
  return out
end

function cjson.decode(...)
  if select('#', ...) ~= 1 then error("bad argument #1 to 'decode' (expected 1 argument)", 2) end
  local s = ...
  if type(s) == 'number' then
    s = tostring(s)
  elseif type(s) ~= 'string' then
    error("bad argument #1 to 'decode' (string expected, got " .. type(s) .. ")", 2)
  end
  local ok, out = py_decode(s, dec_depth, dec_invalid)
  if not ok then error(out, 2) end
  return out
end

function cjson.encode_sparse_array(...)
  local name = 'encode_sparse_array'
  arg_init(name, 3, select('#', ...))
  local convert, ratio, safe = ...
  -- Each setting is stored before the next is checked, as in the C code.
  sparse_convert = enum_option(name, 1, convert, sparse_convert, BOOL_OPTIONS)
  sparse_ratio = integer_option(name, 2, ratio, sparse_ratio, 0, INT_MAX)
  sparse_safe = integer_option(name, 3, safe, sparse_safe, 0, INT_MAX)
  return sparse_convert == 1, sparse_ratio, sparse_safe
end

function cjson.encode_max_depth(...)
  arg_init('encode_max_depth', 1, select('#', ...))
  enc_depth = integer_option('encode_max_depth', 1, (...), enc_depth, 1, INT_MAX)
  return enc_depth
end

function cjson.decode_max_depth(...)
  arg_init('decode_max_depth', 1, select('#', ...))
  dec_depth = integer_option('decode_max_depth', 1, (...), dec_depth, 1, INT_MAX)
  return dec_depth
end

function cjson.encode_number_precision(...)
  arg_init('encode_number_precision', 1, select('#', ...))
  enc_precision = integer_option('encode_number_precision', 1, (...), enc_precision, 1, 14)
  return enc_precision
end

function cjson.encode_keep_buffer(...)
  arg_init('encode_keep_buffer', 1, select('#', ...))
  keep_buffer = enum_option('encode_keep_buffer', 1, (...), keep_buffer, BOOL_OPTIONS)
  return keep_buffer == 1
end

function cjson.encode_invalid_numbers(...)
  arg_init('encode_invalid_numbers', 1, select('#', ...))
  enc_invalid = enum_option('encode_invalid_numbers', 1, (...), enc_invalid, INVALID_OPTIONS)
  return enum_result(enc_invalid, INVALID_OPTIONS)
end

function cjson.decode_invalid_numbers(...)
  arg_init('decode_invalid_numbers', 1, select('#', ...))
  dec_invalid = enum_option('decode_invalid_numbers', 1, (...), dec_invalid, BOOL_OPTIONS)
  return dec_invalid == 1
end

local function is_null(v) return v == null end

-- bit (LuaBitOp's API; the arithmetic is done in Python) ---------------------------------
local bit = {}
local function bit_function(name, nargs, varargs)
  bit[name] = function(...)
    local n = select('#', ...)
    local args = {...}
    local count = n
    if not varargs or count < nargs then count = nargs end
    if name == 'tohex' and args[2] == nil then count = 1 end  -- digits are optional
    for i = 1, count do
      local v = tonumber(args[i])
      if v == nil then
        local got = i > n and 'no value' or type(args[i])
        error(format("bad argument #%d to '%s' (number expected, got %s)", i, name, got), 2)
      end
      args[i] = v
    end
    return py_bit(name, unpack(args, 1, count))
  end
end
bit_function('tobit', 1); bit_function('bnot', 1); bit_function('bswap', 1)
bit_function('band', 1, true); bit_function('bor', 1, true); bit_function('bxor', 1, true)
bit_function('lshift', 2); bit_function('rshift', 2); bit_function('arshift', 2)
bit_function('rol', 2); bit_function('ror', 2); bit_function('tohex', 2)

-- cmsgpack (lua-cmsgpack's API; the work is done in Python, see luamsgpack.py) --------------
-- The wrappers check the arguments in the C code's order and with its messages
-- (luaL_check*), Python does the rest. A Python error comes with its error() level:
-- 2 names the script's line (luaL_error), 0 nothing (an error Lua raises inside the C
-- function, such as "table index is nil"); no message means the time limit passed.
local cmsgpack = {}
local MP_MAX_ARGS = 4000  -- mp_pack's lua_checkstack(L, nargs), on nargs slots already used

local function mp_error(msg, level)
  if msg == nil then
    hook()  -- raises the time-limit error
    msg = 'cmsgpack: interrupted'
  end
  error(msg, level > 0 and level + 1 or 0)
end

-- luaL_argerror: the function is named as its caller called it ('?' through pcall).
-- level: the wrapper's level, seen from arg_error's caller.
local function arg_error(level, narg, extramsg)
  local ar = getinfo(level + 1, 'n')
  local name = ar and ar.name or '?'
  if ar and ar.namewhat == 'method' then
    narg = narg - 1
    if narg == 0 then error(format("calling '%s' on bad self (%s)", name, extramsg), level + 2) end
  end
  error(format("bad argument #%d to '%s' (%s)", narg, name, extramsg), level + 2)
end

local function mp_string(n, s)  -- luaL_checklstring(L, 1): numbers are converted
  if type(s) == 'number' then return tostring(s) end
  if type(s) ~= 'string' then
    arg_error(2, 1, 'string expected, got ' .. (n < 1 and 'no value' or type(s)))
  end
  return s
end

local function mp_integer(narg, n, v, default)  -- luaL_checkinteger / luaL_optinteger
  if v == nil and default ~= nil then return default end
  local x = tonumber(v)
  if x == nil then
    arg_error(2, narg, 'number expected, got ' .. (narg > n and 'no value' or type(v)))
  end
  return x
end

-- The results, t[1..n] (at most 7999: what the C stack could hold). unpack is a C
-- function with 3 arguments, so it can return at most 7997 values itself.
local function mp_results(t, n)
  if n <= 7997 then return unpack(t, 1, n) end
  return t[1], t[2], unpack(t, 3, n)
end

function cmsgpack.pack(...)
  local n = select('#', ...)
  if n == 0 then arg_error(1, 0, 'MessagePack pack needs input.') end
  if n > MP_MAX_ARGS then arg_error(1, 0, 'Too many arguments for MessagePack pack.') end
  local ok, out, level = py_mp_pack(...)
  if not ok then mp_error(out, level) end
  return out[1]  -- the string, in a table: made while Python held the memory cap off
end

function cmsgpack.unpack(...)
  local n = select('#', ...)
  local s = mp_string(n, (...))
  local ok, count, out = py_mp_unpack(s, 0, 0, n)
  if not ok then mp_error(count, out) end
  return mp_results(out, count)
end

function cmsgpack.unpack_one(...)
  local n = select('#', ...)
  local s, offset = ...
  offset = mp_integer(2, n, offset, 0)
  s = mp_string(n, s)
  local ok, count, out = py_mp_unpack(s, 1, offset, 1)
  if not ok then mp_error(count, out) end
  return mp_results(out, count)
end

function cmsgpack.unpack_limit(...)
  local n = select('#', ...)
  local s, limit, offset = ...
  limit = mp_integer(2, n, limit)
  offset = mp_integer(3, n, offset, 0)
  s = mp_string(n, s)
  local ok, count, out = py_mp_unpack(s, limit, offset, 1)
  if not ok then mp_error(count, out) end
  return mp_results(out, count)
end

-- Set after the functions, as luaopen_create does (the order of next() depends on it).
cmsgpack._NAME = 'cmsgpack'
cmsgpack._VERSION = 'lua-cmsgpack 0.4.0'
cmsgpack._COPYRIGHT = 'Copyright (C) 2012, Salvatore Sanfilippo'
cmsgpack._DESCRIPTION = 'MessagePack C implementation for Lua'

-- Replacements of base functions -------------------------------------------------------
-- Lua 5.1's unpack computes e - i + 1 in C ints: a huge range overflows, and an
-- optimising compiler drops the overflow check, so the process crashed (the CVE class
-- Redis patches in luaB_unpack). The bounds are converted here exactly as C converts
-- them ((int)(ptrdiff_t)d), and a range the C stack cannot hold is refused before the
-- C function runs; ranges that pass reach it unchanged.
local MAX_CSTACK = 8000  -- LUAI_MAXCSTACK: what lua_checkstack lets a C function use
local TWO31, TWO32, TWO63 = 2^31, 2^32, 2^63
local function c_int(d)
  if d ~= d or d >= TWO63 or d < -TWO63 then return 0 end  -- what x86-64 gives
  local m = trunc(d) % TWO32
  if m >= TWO31 then m = m - TWO32 end
  return m
end
local function safe_unpack(...)
  local t, i, j = ...
  if type(t) == 'table' then
    local lo, hi = tonumber(i or 1), tonumber(j or #t)
    if lo and hi then
      lo, hi = c_int(lo), c_int(hi)
      -- the C function's frame holds its arguments and then the results
      if lo <= hi and hi - lo + 1 + select('#', ...) > MAX_CSTACK then
        error('too many results to unpack', 2)
      end
    end
  end
  return unpack(...)
end

-- Redis 7's pcall: an error table caught by pcall is returned as its message.
local function redis_pcall(f, ...)
  local r = pack(pcall(f, ...))
  if not r[1] then
    local e = as_error_table(r[2])
    if type(e) == 'table' then
      local msg = e.err
      if type(msg) == 'string' or type(msg) == 'number' then return false, msg end
    end
    return false, e
  end
  return unpack(r, 1, r.n)
end

local function redis_xpcall(f, handler)
  return xpcall(f, function(e) return handler(as_error_table(e)) end)
end

local function safe_loadstring(s, name)
  if type(s) == 'string' and byte(s, 1) == 27 then
    return nil, 'binary chunks are not allowed'
  end
  return raw_loadstring(s, name)
end

local function safe_load(reader, name)
  if type(reader) ~= 'function' then
    error("bad argument #1 to 'load' (function expected, got " .. type(reader) .. ")", 2)
  end
  local parts = {}
  while true do
    local piece = reader()
    if piece == nil or piece == '' then break end
    if type(piece) ~= 'string' then return nil, 'reader function must return a string' end
    parts[#parts + 1] = piece
  end
  return safe_loadstring(concat(parts), name or '=(load)')
end

local function safe_setmetatable(t, mt)
  if t == G or proxied[t] then error('Attempt to modify a readonly table', 2) end
  return setmetatable(t, mt)
end

local function safe_rawset(t, k, v)
  if proxied[t] then error('Attempt to modify a readonly table', 2) end
  return rawset(t, k, v)
end
local function safe_rawget(t, k) return rawget(proxied[t] or t, k) end
local function safe_next(t, k) return next(proxied[t] or t, k) end
local function safe_pairs(t)
  local real = proxied[t]
  if real then return next, real, nil end
  return pairs(t)
end

-- Coroutines get the same time-limit hook as the main thread (hooks are per thread).
local function hooked_create(f)
  local co = co_create(f)
  sethook(co, hook, '', HOOK_COUNT)
  return co
end
local co_lib = {}
for k, v in next, coroutine do co_lib[k] = v end
co_lib.create = hooked_create
co_lib.resume = function(co, ...)
  local r = pack(co_resume(co, ...))
  if not r[1] then r[2] = as_error_table(r[2]) end
  return unpack(r, 1, r.n)
end
co_lib.wrap = function(f)
  local co = hooked_create(f)
  return function(...)
    local r = pack(co_resume(co, ...))
    if r[1] then return unpack(r, 2, r.n) end
    local e = as_error_table(r[2])
    if type(e) == 'string' then error(e, 2) end
    error(e, 0)
  end
end

local function copy(t) local c = {} for k, v in next, t do c[k] = v end return c end
local string_lib = copy(string)
local math_lib = copy(math)
local table_lib = copy(table)

-- Seal the global table -----------------------------------------------------------------
-- As in Redis 7.0.15+/7.2.7+, getfenv, setfenv and newproxy are not available.
local base = {
  assert = assert, collectgarbage = collectgarbage, error = error, gcinfo = gcinfo,
  getmetatable = getmetatable, ipairs = ipairs, rawequal = rawequal, select = select,
  setmetatable = safe_setmetatable, tonumber = tonumber, tostring = tostring, type = type,
  unpack = safe_unpack, xpcall = redis_xpcall, _VERSION = _VERSION,
  pcall = redis_pcall, loadstring = safe_loadstring, load = safe_load,
  rawget = safe_rawget, rawset = safe_rawset, next = safe_next, pairs = safe_pairs,
  string = readonly(string_lib), table = readonly(table_lib), math = readonly(math_lib),
  coroutine = readonly(co_lib), redis = readonly(redis), cjson = readonly(cjson),
  bit = readonly(bit), cmsgpack = readonly(cmsgpack), _G = G,
  -- lupa reads the global 'debug' (for debug.traceback) before every call into Lua,
  -- outside protected mode: it must resolve without raising, and without running code.
  debug = false,
}
-- Strings index the real string library: scripts get a read-only stand-in instead.
getmetatable('').__metatable = readonly({__index = base.string})

local names = {}
for k in next, G do names[#names + 1] = k end
for i = 1, #names do rawset(G, names[i], nil) end
proxied[G] = base
setmetatable(base, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end})
setmetatable(G, {__index = base, __newindex = readonly_error, __metatable = SEALED})

-- Engine entry points -------------------------------------------------------------------
-- Where the error happened: the innermost frame of the user's code.
-- A frame replaced by a tail call is gone: then the error has no location.
local function error_handler(e)
  e = as_error_table(e)
  local source, line
  for level = 2, 200 do
    local info = getinfo(level, 'Sl')
    if not info or info.what == 'tail' then break end
    if info.what ~= 'C' and info.source ~= PRELUDE_SOURCE then
      source, line = info.source, info.currentline
      break
    end
  end
  local msg
  if type(e) == 'table' then
    msg = rawget(e, 'err')
    if type(msg) == 'number' then msg = tostring(msg) end
    if type(msg) ~= 'string' then msg = 'ERR unknown error' end
  else
    msg = 'ERR ' .. tostring(e)
  end
  return {msg, source, line}
end

-- A script's return value, reduced to tagged tables read with raw access only, so a
-- hostile metatable cannot run code once the script is over.
local function normalize(v, depth)
  local t = type(v)
  if t == 'string' or t == 'number' or t == 'boolean' then return v end
  if t ~= 'table' then return nil end
  if depth > MAX_REPLY_DEPTH then error('reached lua stack limit', 0) end
  depth = depth + 1
  local f = rawget(v, 'err')
  -- redis.pcall's error tables carry Redis's hidden flag: already counted in the stats
  if type(f) == 'string' then return {'err', f, rawget(v, 'ignore_error_stats_update') == true} end
  f = rawget(v, 'ok')
  if type(f) == 'string' then return {'ok', f} end
  f = rawget(v, 'double')
  if type(f) == 'number' then return {'double', f} end
  f = rawget(v, 'big_number')
  if type(f) == 'string' then return {'big_number', f} end
  f = rawget(v, 'verbatim_string')
  if type(f) == 'table' then
    local fmt, s = rawget(f, 'format'), rawget(f, 'string')
    if type(fmt) == 'string' and type(s) == 'string' then return {'verbatim', s, fmt} end
  end
  f = rawget(v, 'map')
  if type(f) == 'table' then
    local out, n = {'map', 0}, 0
    for k, x in next, f do
      out[n + 3] = normalize(k, depth)
      out[n + 4] = normalize(x, depth)
      n = n + 2
    end
    out[2] = n
    return out
  end
  f = rawget(v, 'set')
  if type(f) == 'table' then
    local out, n = {'set', 0}, 0
    for k in next, f do
      n = n + 1
      out[n + 2] = normalize(k, depth)
    end
    out[2] = n
    return out
  end
  local out, n = {'array', 0}, 0
  while true do
    local x = rawget(v, n + 1)
    if x == nil then break end
    n = n + 1
    out[n + 2] = normalize(x, depth)
  end
  out[2] = n
  return out
end

local function compile(body)
  if byte(body, 1) == 27 then return nil, 'user_script: binary chunks are not allowed' end
  local f, err = raw_loadstring(body, '@user_script')
  return f, err
end

-- The memory ceiling holds while the script's own code runs (py_cap): Lua raises
-- "not enough memory" there, inside protected calls; outside, lupa's own calls run
-- uncapped, since running out of memory in them would abort the process.
local function run(fn, keys, argv)
  rawset(base, 'KEYS', keys)
  rawset(base, 'ARGV', argv)
  sethook(hook, '', HOOK_COUNT)
  py_cap(true)
  local ok, res = xpcall(fn, error_handler)
  if not ok then
    py_cap(false)
    if type(res) == 'table' then return false, res[1], res[2], res[3] end
    return false, 'ERR ' .. tostring(res)
  end
  local done, out = pcall(normalize, res, 0)
  py_cap(false)
  if not done then return false, 'ERR ' .. tostring(out) end
  return true, out
end

local function clear_hook() sethook() end
local function memory() return gc('count') * 1024 end

return run, compile, clear_hook, is_null, null, memory
"""
