// Node preload that adds `Authorization: Bearer $MCP_BEARER_TOKEN` to every outgoing HTTP request.
//
// The official conformance suite's client sends no credentials and has no flag for one, so to run
// it against the OAuth-protected server we mint a token through the real flow and load this:
//
//   MCP_BEARER_TOKEN=<token> NODE_OPTIONS="--import /abs/path/scripts/inject-auth.mjs" \
//     conformance server --url http://127.0.0.1:PORT/mcp ...
//
// It covers both ways the suite talks HTTP:
//   1. fetch() and undici.request(): an undici global dispatcher composed with an interceptor;
//   2. raw node:http request()/get() (some 0.2.x scenarios use them): wrapped to set the header.
// A request that already carries an Authorization header is left alone. MCP_BEARER_ORIGIN
// (e.g. http://127.0.0.1:3232) limits injection to one origin; unset, every request gets it.
// undici is imported from the conformance package's own install (MCP_TOOLS_NODE_MODULES, default
// <repo>/.cache/mcp-tools/node_modules), so the dispatcher is the one the suite uses.

import http from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const token = process.env.MCP_BEARER_TOKEN;
if (!token) {
  throw new Error("inject-auth.mjs: MCP_BEARER_TOKEN is not set (mint a token with the real OAuth flow first)");
}
const value = `Bearer ${token}`;
const onlyOrigin = process.env.MCP_BEARER_ORIGIN ? new URL(process.env.MCP_BEARER_ORIGIN).origin : null;

const here = dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.MCP_TOOLS_NODE_MODULES || join(here, "..", ".cache", "mcp-tools", "node_modules");
const undici = await import(pathToFileURL(join(nodeModules, "undici", "index.js")).href);

function applies(origin) {
  if (!onlyOrigin) return true;
  try {
    return new URL(String(origin)).origin === onlyOrigin;
  } catch {
    return false;
  }
}

// Headers reach an undici dispatcher as a flat [k, v, k, v] array, an array of pairs, an object,
// or an iterable; return the same shape with Authorization added when missing.
function withAuth(headers) {
  if (headers == null) return { authorization: value };
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      const has = headers.some(([k]) => String(k).toLowerCase() === "authorization");
      return has ? headers : [...headers, ["authorization", value]];
    }
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === "authorization") return headers;
    }
    return [...headers, "authorization", value];
  }
  if (typeof headers[Symbol.iterator] === "function" && typeof headers.entries === "function") {
    const pairs = [...headers];
    const has = pairs.some(([k]) => String(k).toLowerCase() === "authorization");
    return has ? pairs : [...pairs, ["authorization", value]];
  }
  const has = Object.keys(headers).some((k) => k.toLowerCase() === "authorization");
  return has ? headers : { ...headers, authorization: value };
}

const injecting = (dispatch) => (opts, handler) => {
  if (applies(opts.origin)) opts = { ...opts, headers: withAuth(opts.headers) };
  return dispatch(opts, handler);
};
undici.setGlobalDispatcher(new undici.Agent().compose(injecting));

const originalRequest = http.request;
http.request = function request(...args) {
  const req = originalRequest.apply(this, args);
  if (!req.getHeader("authorization") && applies(originFromArgs(args))) {
    req.setHeader("authorization", value);
  }
  return req;
};
http.get = function get(...args) {
  const req = http.request(...args);
  req.end();
  return req;
};

function originFromArgs(args) {
  const first = args[0];
  try {
    if (typeof first === "string" || first instanceof URL) return new URL(String(first)).origin;
    if (first && typeof first === "object") {
      const host = first.hostname || first.host || "localhost";
      const port = first.port ? `:${first.port}` : "";
      return `${first.protocol || "http:"}//${host}${port}`;
    }
  } catch {
    return null;
  }
  return null;
}
