-- wrk script: POST one MCP tools/call (`echo`) per request, in either protocol revision.
--
-- Configured through the environment (set by scripts/bench/run.py):
--   BENCH_REVISION  "2026-07-28" (stateless: per-request _meta plus MCP-Protocol-Version,
--                   Mcp-Method and Mcp-Name headers) or "2025-11-25" (an initialized session:
--                   Mcp-Session-Id); "bare" posts the same body with no MCP headers.
--   BENCH_TOKENS    space-separated bearer tokens, used round-robin (empty: no Authorization)
--   BENCH_SESSIONS  space-separated session ids for 2025-11-25, in step with BENCH_TOKENS (a
--                   session is bound to the credential that opened it)
--   BENCH_RESULT    where done() writes its JSON summary
--   BENCH_PROOFS    DPoP (RFC 9449): a file of `<token index> <proof>` lines, fresh proofs made
--                   just before the run (wrk cannot sign); each is sent once, with its token as
--                   `Authorization: DPoP` (and that token's session). Thread n of BENCH_THREADS
--                   takes lines n, n + BENCH_THREADS, ...; a thread that runs out sends no proof
--                   (a 401, which fails the run: make more proofs) and counts it in `proofs_short`.
-- Each thread starts at a different offset in the lists so the connections spread over them.
-- JSON-RPC ids are unique across threads (the thread's offset in the high digits): one session
-- may be used by both threads, and an id must not be reused within a session.

local revision = os.getenv("BENCH_REVISION") or "2026-07-28"

local function words(value)
  local list = {}
  for word in string.gmatch(value or "", "%S+") do
    list[#list + 1] = word
  end
  return list
end

local tokens = words(os.getenv("BENCH_TOKENS"))
local sessions = words(os.getenv("BENCH_SESSIONS"))
local proofs_path = os.getenv("BENCH_PROOFS") or ""
local threads = {}
local counter = 0
local proofs = {} -- this thread's {token index, proof} pairs, in order
local next_proof = 1
proofs_short = 0 -- global: done() reads it from each thread

function setup(thread)
  thread:set("offset", #threads)
  threads[#threads + 1] = thread
end

local function body_for(id)
  if revision == "2026-07-28" then
    return '{"jsonrpc":"2.0","id":' .. id .. ',"method":"tools/call","params":{"name":"echo",'
      .. '"arguments":{"message":"hello"},"_meta":{'
      .. '"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
      .. '"io.modelcontextprotocol/clientCapabilities":{},'
      .. '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"}}}}'
  end
  return '{"jsonrpc":"2.0","id":' .. id .. ',"method":"tools/call",'
    .. '"params":{"name":"echo","arguments":{"message":"hello"}}}'
end

local function load_proofs()
  local every = tonumber(os.getenv("BENCH_THREADS") or "1")
  local line_number = 0
  for line in io.lines(proofs_path) do
    if line_number % every == (offset or 0) then
      local index, proof = string.match(line, "^(%d+) (%S+)$")
      proofs[#proofs + 1] = { tonumber(index) + 1, proof }
    end
    line_number = line_number + 1
  end
end

function init(args)
  counter = (offset or 0) * 7
  if proofs_path ~= "" then
    load_proofs()
  end
end

function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
  }
  if revision ~= "bare" then
    headers["MCP-Protocol-Version"] = revision
  end
  if revision == "2026-07-28" then
    headers["Mcp-Method"] = "tools/call"
    headers["Mcp-Name"] = "echo"
  end
  if proofs_path ~= "" then
    local entry = proofs[next_proof]
    local index = counter % #tokens + 1
    if entry then
      index = entry[1]
      headers["Authorization"] = "DPoP " .. tokens[index]
      headers["DPoP"] = entry[2]
      next_proof = next_proof + 1
    else
      headers["Authorization"] = "DPoP " .. tokens[index]
      proofs_short = proofs_short + 1
    end
    if revision == "2025-11-25" then
      headers["Mcp-Session-Id"] = sessions[index]
    end
  elseif #tokens > 0 then
    local index = counter % #tokens + 1
    headers["Authorization"] = "Bearer " .. tokens[index]
    if revision == "2025-11-25" then
      headers["Mcp-Session-Id"] = sessions[index]
    end
  elseif revision == "2025-11-25" and #sessions > 0 then
    headers["Mcp-Session-Id"] = sessions[counter % #sessions + 1]
  end
  return wrk.format("POST", wrk.path, headers, body_for((offset or 0) * 1000000000 + counter))
end

function done(summary, latency, requests)
  local errors = summary.errors
  local short = 0
  for _, thread in ipairs(threads) do
    short = short + (thread:get("proofs_short") or 0)
  end
  local out = io.open(os.getenv("BENCH_RESULT"), "w")
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,'
      .. '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"proofs_short":%d,'
      .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, short,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
  ))
  out:close()
end
