#!/usr/bin/env bash
# The whole OAuth 2.1 flow against a running server, with nothing but curl (and python3 to read
# JSON and HTML and to make the PKCE pair), checking every step and printing it as a walkthrough
# you can follow by hand.
#
#   scripts/test-oauth.sh [BASE_URL]        # default http://127.0.0.1:3232 (make dev-internal)
#   scripts/test-oauth.sh --sign-in AUTHORIZE_URL
#
# --sign-in does only what a person at a browser does with an authorization URL your own client
# built: sign in, approve, and print the URL the browser is finally sent to (the redirect URI with
# `code`, `state` and `iss`) on standard output (docs/oauth.md uses it).
#
# BASE_URL is the MCP server's base URL; the MCP endpoint is BASE_URL/mcp. Works in both modes:
# the authorization server is found through the MCP server's metadata, wherever it runs.
# Environment: OAUTH_USER / OAUTH_PASSWORD (default demo / demo), REDIRECT_URI (a loopback URL;
# nothing needs to listen there), REVOCATION_WAIT (seconds to wait for a revoked token to be
# refused; external mode caches introspection up to INTROSPECTION_CACHE_TTL, default 30 s).
#
# Steps: 1 call /mcp without a token -> 401 challenge; 2 protected resource metadata; 3 auth
# server metadata; 4 register a client (DCR); 5 authorize: PKCE, log in, consent -> code; 6 token;
# 7 tools/call whoami on /mcp; 8 refresh; 9 call with the new token; 10 revoke; 11 call again -> 401.
set -euo pipefail

SIGN_IN_URL=""
if [ "${1:-}" = --sign-in ]; then
  SIGN_IN_URL="${2:?usage: scripts/test-oauth.sh --sign-in AUTHORIZE_URL}"
  set -- # no BASE_URL: only the pages are walked
fi
BASE_URL="${1:-http://127.0.0.1:3232}"
BASE_URL="${BASE_URL%/}"
MCP_URL="$BASE_URL/mcp"
OAUTH_USER="${OAUTH_USER:-demo}"
OAUTH_PASSWORD="${OAUTH_PASSWORD:-demo}"
REDIRECT_URI="${REDIRECT_URI:-http://127.0.0.1:8976/callback}"
REVOCATION_WAIT="${REVOCATION_WAIT:-35}"
PROTOCOL_VERSION="2025-11-25"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
JAR="$WORK/cookies.txt"
: >"$JAR"

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'; else B="" G="" R="" D="" N=""; fi
step() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }
say() { printf '   %s\n' "$*"; }
show() { printf '   %s$ %s%s\n' "$D" "$*" "$N"; }
ok() { printf '   %s✔ %s%s\n' "$G" "$*" "$N"; }
fail() {
  printf '   %s✘ FAIL: %s%s\n' "$R" "$*" "$N" >&2
  exit 1
}
short() { local v="$1"; [ "${#v}" -gt 16 ] && printf '%s…' "${v:0:12}" || printf '%s' "$v"; }

# json FILE EXPR: evaluate a Python expression on the parsed JSON document `d` ("" when missing).
json() {
  python3 - "$1" "$2" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    v = eval(sys.argv[2], {"d": d})
except Exception:
    v = ""
print(json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v))
PY
}

# header FILE NAME: one response header's value from a `curl -D` dump (last response).
header() {
  python3 - "$1" "$2" <<'PY'
import sys
blocks = open(sys.argv[1], encoding="latin-1").read().replace("\r", "").strip().split("\n\n")
for line in blocks[-1].split("\n")[1:]:
    name, _, value = line.partition(":")
    if name.strip().lower() == sys.argv[2].lower():
        print(value.strip())
        break
PY
}

status() { head -1 "$1" | awk '{print $2}'; }

# challenge_param HEADER NAME: an auth-param of a WWW-Authenticate: Bearer challenge.
challenge_param() {
  python3 - "$1" "$2" <<'PY'
import re, sys
for name, quoted, bare in re.findall(r'([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', sys.argv[1]):
    if name == sys.argv[2]:
        print(quoted or bare)
        break
PY
}

# form FILE: the POST form of an HTML page as url-encoded hidden fields, then "|" and the
# decision to send: "login" when it asks for a password, else "consent".
form() {
  python3 - "$1" <<'PY'
import sys, urllib.parse
from html.parser import HTMLParser
class P(HTMLParser):
    fields, action, password = [], None, False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post" and self.action is None:
            self.action = a.get("action") or ""
        if tag == "input" and (a.get("type") or "").lower() == "hidden" and a.get("name"):
            self.fields.append((a["name"], a.get("value") or ""))
        if tag == "input" and (a.get("type") or "").lower() == "password":
            self.password = True
p = P(); p.feed(open(sys.argv[1], encoding="utf-8").read())
print(urllib.parse.urlencode(p.fields) + "|" + ("login" if p.password else "consent") + "|" + (p.action or ""))
PY
}

urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
absolute() { python3 -c 'import sys, urllib.parse; print(urllib.parse.urljoin(sys.argv[1], sys.argv[2]))' "$1" "$2"; }
query_param() {
  python3 -c 'import sys, urllib.parse as u; q = u.parse_qs(u.urlsplit(sys.argv[1]).query); print(q.get(sys.argv[2], [""])[0])' "$1" "$2"
}

# mcp TOKEN BODY [SESSION]: one JSON-RPC POST to /mcp; response headers in $WORK/h, body in $WORK/b
# (an SSE stream is reduced to its last `data:` payload).
mcp() {
  local token="$1" body="$2" session="${3:-}"
  local args=(-sS -o "$WORK/raw" -D "$WORK/h" -X POST "$MCP_URL"
    -H "content-type: application/json" -H "accept: application/json, text/event-stream"
    -H "mcp-protocol-version: $PROTOCOL_VERSION" --data "$body")
  [ -n "$token" ] && args+=(-H "authorization: Bearer $token")
  [ -n "$session" ] && args+=(-H "mcp-session-id: $session")
  curl "${args[@]}"
  if grep -q '^data:' "$WORK/raw" 2>/dev/null; then
    grep '^data:' "$WORK/raw" | tail -1 | sed 's/^data: \{0,1\}//' >"$WORK/b"
  else
    cp "$WORK/raw" "$WORK/b"
  fi
}

INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"'$PROTOCOL_VERSION'","capabilities":{},"clientInfo":{"name":"test-oauth.sh","version":"1"}}}'
INITIALIZED='{"jsonrpc":"2.0","method":"notifications/initialized"}'
WHOAMI='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'

# whoami TOKEN: initialize a session, then tools/call whoami; prints the tool's text.
whoami() {
  local token="$1" session
  mcp "$token" "$INIT"
  [ "$(status "$WORK/h")" = 200 ] || fail "initialize with the token answered $(status "$WORK/h"): $(cat "$WORK/b")"
  session="$(header "$WORK/h" mcp-session-id)"
  mcp "$token" "$INITIALIZED" "$session"
  mcp "$token" "$WHOAMI" "$session"
  [ "$(status "$WORK/h")" = 200 ] || fail "tools/call whoami answered $(status "$WORK/h"): $(cat "$WORK/b")"
  [ -z "$(json "$WORK/b" 'd.get("error")')" ] || fail "tools/call whoami failed: $(cat "$WORK/b")"
  python3 - "$WORK/b" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))["result"]
s = result.get("structuredContent")
if s:
    print(f"subject={s['subject']} client={s['client_id']} scopes={' '.join(s['scopes'])}")
else:
    print(" ".join(c.get("text", "") for c in result["content"]))
PY
}

# sign_in URL REDIRECT_URI: GET the authorization URL and answer the pages as a person would (log
# in, approve) until the AS sends the browser to REDIRECT_URI; that final URL is left in CODE_URL.
sign_in() {
  local URL="$1" REDIRECT_URI="$2" METHOD=GET DATA="" CODE LOCATION FIELDS KIND ACTION
  CODE_URL=""
  for _ in $(seq 1 12); do
    if [ "$METHOD" = GET ]; then
      curl -sS -b "$JAR" -c "$JAR" -o "$WORK/page.html" -D "$WORK/h" "$URL"
    else
      curl -sS -b "$JAR" -c "$JAR" -o "$WORK/page.html" -D "$WORK/h" -X POST "$URL" \
        -H "content-type: application/x-www-form-urlencoded" --data "$DATA"
    fi
    CODE="$(status "$WORK/h")"
    LOCATION="$(header "$WORK/h" location)"
    if [ -n "$LOCATION" ]; then
      LOCATION="$(absolute "$URL" "$LOCATION")"
      say "$METHOD ${URL%%\?*} -> $CODE"
      if [ "${LOCATION%%\?*}" = "$REDIRECT_URI" ]; then CODE_URL="$LOCATION"; break; fi
      METHOD=GET URL="$LOCATION" DATA=""
      continue
    fi
    [ "$CODE" = 200 ] || fail "$METHOD $URL answered $CODE: $(head -c 600 "$WORK/page.html")"
    IFS='|' read -r FIELDS KIND ACTION <<<"$(form "$WORK/page.html")"
    ACTION="$(absolute "$URL" "${ACTION:-$URL}")"
    if [ "$KIND" = login ]; then
      say "GET ${URL%%\?*} -> login page; POST username=$OAUTH_USER, password=***"
      DATA="$FIELDS&username=$(urlencode "$OAUTH_USER")&password=$(urlencode "$OAUTH_PASSWORD")"
    else
      say "GET ${URL%%\?*} -> consent page; POST decision=approve"
      DATA="$FIELDS&decision=approve"
    fi
    METHOD=POST URL="$ACTION"
  done
  [ -n "$CODE_URL" ] || fail "never redirected to $REDIRECT_URI"
}

if [ -n "$SIGN_IN_URL" ]; then
  # Only the browser's part, for a flow a client of your own started: the walk goes to stderr,
  # the URL the browser ends at (your redirect URI with code, state and iss) to stdout.
  sign_in "$SIGN_IN_URL" "$(query_param "$SIGN_IN_URL" redirect_uri)" >&2
  printf '%s\n' "$CODE_URL"
  exit 0
fi

printf '%sOAuth 2.1 walkthrough against %s%s\n' "$B" "$MCP_URL" "$N"

step "1. Call the MCP endpoint without a token"
show "curl -X POST $MCP_URL -d '<initialize>'"
mcp "" "$INIT"
[ "$(status "$WORK/h")" = 401 ] || fail "expected 401 without a token, got $(status "$WORK/h")"
CHALLENGE="$(header "$WORK/h" www-authenticate)"
say "401, WWW-Authenticate: $CHALLENGE"
PRM_URL="$(challenge_param "$CHALLENGE" resource_metadata)"
[ -n "$PRM_URL" ] || fail "the challenge has no resource_metadata"
ok "401 with a Bearer challenge pointing at $PRM_URL"

step "2. Protected resource metadata (RFC 9728)"
show "curl $PRM_URL"
curl -sS -o "$WORK/prm.json" -D "$WORK/h" "$PRM_URL"
[ "$(status "$WORK/h")" = 200 ] || fail "metadata answered $(status "$WORK/h")"
[ "$(json "$WORK/prm.json" 'd["resource"]')" = "$MCP_URL" ] || fail "resource is $(json "$WORK/prm.json" 'd["resource"]'), not $MCP_URL"
ISSUER="$(json "$WORK/prm.json" 'd["authorization_servers"][0]')"
[ -n "$ISSUER" ] || fail "no authorization_servers"
say "resource = $MCP_URL"
say "scopes_supported = $(json "$WORK/prm.json" '" ".join(d.get("scopes_supported", []))')"
ok "authorization server: $ISSUER"

step "3. Authorization server metadata (RFC 8414)"
AS_META_URL="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(f"{p.scheme}://{p.netloc}/.well-known/oauth-authorization-server{p.path.rstrip(chr(47))}")' "$ISSUER")"
show "curl $AS_META_URL"
curl -sS -o "$WORK/as.json" -D "$WORK/h" "$AS_META_URL"
[ "$(status "$WORK/h")" = 200 ] || fail "AS metadata answered $(status "$WORK/h")"
[ "$(json "$WORK/as.json" 'd["issuer"]')" = "$ISSUER" ] || fail "issuer $(json "$WORK/as.json" 'd["issuer"]') != $ISSUER"
[ "$(json "$WORK/as.json" '"S256" in d.get("code_challenge_methods_supported", [])')" = True ] || fail "no S256 PKCE"
AUTHORIZE="$(json "$WORK/as.json" 'd["authorization_endpoint"]')"
TOKEN_EP="$(json "$WORK/as.json" 'd["token_endpoint"]')"
REGISTER="$(json "$WORK/as.json" 'd["registration_endpoint"]')"
REVOKE="$(json "$WORK/as.json" 'd["revocation_endpoint"]')"
for v in AUTHORIZE TOKEN_EP REGISTER REVOKE; do [ -n "${!v}" ] || fail "metadata lacks $v"; done
say "authorize: $AUTHORIZE"
say "token:     $TOKEN_EP"
say "register:  $REGISTER"
say "revoke:    $REVOKE"
ok "issuer matches, PKCE S256 supported"

step "4. Register a client (RFC 7591 dynamic registration)"
REG_BODY='{"client_name":"test-oauth.sh","redirect_uris":["'$REDIRECT_URI'"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none","application_type":"native"}'
show "curl -X POST $REGISTER -H 'content-type: application/json' -d '$REG_BODY'"
curl -sS -o "$WORK/reg.json" -D "$WORK/h" -X POST "$REGISTER" -H "content-type: application/json" --data "$REG_BODY"
[ "$(status "$WORK/h")" = 201 ] || fail "registration answered $(status "$WORK/h"): $(cat "$WORK/reg.json")"
CLIENT_ID="$(json "$WORK/reg.json" 'd["client_id"]')"
[ -n "$CLIENT_ID" ] || fail "no client_id"
[ -z "$(json "$WORK/reg.json" 'd.get("client_secret")')" ] || fail "a public client got a secret"
ok "client_id $CLIENT_ID (public client: no secret)"

step "5. Authorize: PKCE, log in as $OAUTH_USER, consent"
# PKCE (RFC 7636): a random verifier, and its challenge BASE64URL(SHA256(verifier)) without padding.
VERIFIER="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
CHALLENGE_S256="$(python3 -c 'import base64, hashlib, sys; print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).rstrip(b"=").decode())' "$VERIFIER")"
STATE="$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"
SCOPE="$(json "$WORK/prm.json" '" ".join(d.get("scopes_supported", []))')"
URL="$AUTHORIZE?response_type=code&client_id=$(urlencode "$CLIENT_ID")&redirect_uri=$(urlencode "$REDIRECT_URI")&scope=$(urlencode "$SCOPE")&state=$STATE&code_challenge=$CHALLENGE_S256&code_challenge_method=S256&resource=$(urlencode "$MCP_URL")"
say "code_verifier  = $(short "$VERIFIER") (kept secret), code_challenge = $(short "$CHALLENGE_S256") (S256)"
show "browser opens $URL"
sign_in "$URL" "$REDIRECT_URI"
[ -z "$(query_param "$CODE_URL" error)" ] || fail "authorization error: $CODE_URL"
AUTH_CODE="$(query_param "$CODE_URL" code)"
[ -n "$AUTH_CODE" ] || fail "no code in $CODE_URL"
[ "$(query_param "$CODE_URL" state)" = "$STATE" ] || fail "state not echoed: $CODE_URL"
[ "$(query_param "$CODE_URL" iss)" = "$ISSUER" ] || fail "iss is '$(query_param "$CODE_URL" iss)', not $ISSUER"
ok "redirected to $REDIRECT_URI with code $(short "$AUTH_CODE"), state echoed, iss = issuer (RFC 9207)"

step "6. Exchange the code for tokens"
show "curl -X POST $TOKEN_EP -d grant_type=authorization_code -d code=… -d code_verifier=… -d client_id=… -d redirect_uri=… -d resource=$MCP_URL"
curl -sS -o "$WORK/tok.json" -D "$WORK/h" -X POST "$TOKEN_EP" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$AUTH_CODE" \
  --data-urlencode "code_verifier=$VERIFIER" --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "resource=$MCP_URL"
[ "$(status "$WORK/h")" = 200 ] || fail "token endpoint answered $(status "$WORK/h"): $(cat "$WORK/tok.json")"
header "$WORK/h" cache-control | grep -qi no-store || fail "token response lacks Cache-Control: no-store"
ACCESS="$(json "$WORK/tok.json" 'd["access_token"]')"
REFRESH="$(json "$WORK/tok.json" 'd.get("refresh_token")')"
[ "$(json "$WORK/tok.json" 'd["token_type"].lower()')" = bearer ] || fail "token_type is not Bearer"
[ -n "$ACCESS" ] && [ -n "$REFRESH" ] || fail "expected an access and a refresh token: $(cat "$WORK/tok.json")"
say "access_token = $(short "$ACCESS"), expires_in = $(json "$WORK/tok.json" 'd.get("expires_in")') s"
say "scope = $(json "$WORK/tok.json" 'd.get("scope")')"
ok "tokens issued (Cache-Control: no-store)"

step "7. Call a tool with the access token"
show "curl -X POST $MCP_URL -H 'authorization: Bearer …' -d '<initialize>'; then tools/call whoami"
WHO="$(whoami "$ACCESS")"
say "whoami: $WHO"
grep -q "subject=$OAUTH_USER " <<<"$WHO" || fail "whoami does not name $OAUTH_USER: $WHO"
ok "the MCP server knows who is calling"

step "8. Refresh the access token"
show "curl -X POST $TOKEN_EP -d grant_type=refresh_token -d refresh_token=… -d client_id=…"
curl -sS -o "$WORK/ref.json" -D "$WORK/h" -X POST "$TOKEN_EP" \
  --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH" \
  --data-urlencode "client_id=$CLIENT_ID" --data-urlencode "resource=$MCP_URL"
[ "$(status "$WORK/h")" = 200 ] || fail "refresh answered $(status "$WORK/h"): $(cat "$WORK/ref.json")"
ACCESS2="$(json "$WORK/ref.json" 'd["access_token"]')"
REFRESH2="$(json "$WORK/ref.json" 'd.get("refresh_token")')"
[ -n "$ACCESS2" ] && [ "$ACCESS2" != "$ACCESS" ] || fail "no new access token"
[ -n "$REFRESH2" ] && [ "$REFRESH2" != "$REFRESH" ] || fail "the refresh token was not rotated"
ok "new access token $(short "$ACCESS2"), refresh token rotated"

step "9. Call the tool with the new access token"
WHO="$(whoami "$ACCESS2")"
grep -q "subject=$OAUTH_USER " <<<"$WHO" || fail "whoami with the refreshed token: $WHO"
ok "whoami: $WHO"

step "10. Revoke the access token (RFC 7009)"
show "curl -X POST $REVOKE -d token=… -d token_type_hint=access_token -d client_id=…"
curl -sS -o "$WORK/rev.json" -D "$WORK/h" -X POST "$REVOKE" \
  --data-urlencode "token=$ACCESS2" --data-urlencode token_type_hint=access_token --data-urlencode "client_id=$CLIENT_ID"
[ "$(status "$WORK/h")" = 200 ] || fail "revocation answered $(status "$WORK/h"): $(cat "$WORK/rev.json")"
ok "200"

step "11. Call again with the revoked token"
started=$SECONDS
deadline=$((SECONDS + REVOCATION_WAIT))
while :; do
  mcp "$ACCESS2" "$INIT"
  CODE="$(status "$WORK/h")"
  [ "$CODE" = 401 ] && break
  [ "$CODE" = 200 ] || fail "expected 401 (or 200 while a cache still holds it), got $CODE"
  [ "$SECONDS" -lt "$deadline" ] || fail "the revoked token still works after ${REVOCATION_WAIT}s"
  sleep 0.5
done
CHALLENGE="$(header "$WORK/h" www-authenticate)"
[ "$(challenge_param "$CHALLENGE" error)" = invalid_token ] || fail "expected error=invalid_token: $CHALLENGE"
say "401, WWW-Authenticate: $CHALLENGE"
waited=$((SECONDS - started))
if [ "$waited" -gt 0 ]; then
  say "(refused after ~${waited}s: the MCP server caches introspection results up to INTROSPECTION_CACHE_TTL)"
fi
ok "the revoked token is refused"

printf '\n%sAll 11 steps passed.%s\n' "$G$B" "$N"
