// The MCP TypeScript SDK's OAuth client as a client with a client ID metadata document that
// authenticates with private_key_jwt (RFC 7523 section 2.2): the SDK's own
// `createPrivateKeyJwtAuth` signs an assertion for each token request (the code exchange and the
// refresh), through the provider's `addClientAuthentication` hook.
//
// Driven by tests/e2e/test_key_client_metadata_document.py over stdin/stdout, one JSON object
// per line: it prints {"authorize": url} where a browser would open, reads the code the test's
// person got back, prints {"whoami": ...} after a tool call, then forgets its access token (as
// if it had expired), so the SDK refreshes with a new assertion, and prints {"whoami": ...} again.
//
// Environment: MCP_TOOLS_NODE_MODULES (the pinned SDK), MCP_URL, CLIENT_ID (the document's
// URL), REDIRECT_URI, PRIVATE_KEY_PEM (PKCS#8), SIGNING_ALG.
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const env = process.env;
const sdk = (path) => import(pathToFileURL(`${env.MCP_TOOLS_NODE_MODULES}/@modelcontextprotocol/sdk/dist/esm/${path}`).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { UnauthorizedError } = await sdk('client/auth.js');
const { createPrivateKeyJwtAuth } = await sdk('client/auth-extensions.js');

const say = (object) => process.stdout.write(JSON.stringify(object) + '\n');
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

let clientInformation = { client_id: env.CLIENT_ID };  // a URL client_id: the AS fetches the document
let tokens;
let verifier;
const provider = {
  get redirectUrl() { return env.REDIRECT_URI; },
  get clientMetadata() {
    return {
      client_name: 'TypeScript SDK key client',
      redirect_uris: [env.REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'private_key_jwt',
    };
  },
  clientInformation: () => clientInformation,
  saveClientInformation: (information) => { clientInformation = information; },
  tokens: () => tokens,
  saveTokens: (saved) => { tokens = saved; },
  redirectToAuthorization: (url) => say({ authorize: url.href }),
  saveCodeVerifier: (saved) => { verifier = saved; },
  codeVerifier: () => verifier,
  addClientAuthentication: createPrivateKeyJwtAuth({
    issuer: env.CLIENT_ID,
    subject: env.CLIENT_ID,
    privateKey: env.PRIVATE_KEY_PEM,
    alg: env.SIGNING_ALG,
  }),
};

async function whoami() {
  const client = new Client({ name: 'ts-sdk-key-client', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(env.MCP_URL), { authProvider: provider });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    say({ whoami: result.structuredContent ?? null, isError: result.isError ?? false });
  } finally {
    await client.close();
  }
}

const first = new StreamableHTTPClientTransport(new URL(env.MCP_URL), { authProvider: provider });
try {
  await new Client({ name: 'ts-sdk-key-client', version: '1.0.0' }).connect(first);
  throw new Error('the MCP server let an unauthenticated client in');
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
}
const { value: code } = await lines.next();
await first.finishAuth(code.trim());
await whoami();
tokens = { ...tokens, access_token: 'forgotten' };  // expired, as far as the MCP server can tell
await whoami();
say({ refreshed: tokens.access_token !== 'forgotten', has_refresh_token: Boolean(tokens.refresh_token) });
process.exit(0);
