// The MCP TypeScript SDK's own machine-client providers (SEP-1046): `ClientCredentialsProvider`
// (client_secret_basic) or `PrivateKeyJwtProvider` (RFC 7523 section 2.2), as a job that runs
// with nobody at the keyboard. The SDK finds the authorization server from the MCP server's 401,
// gets a client_credentials token, and the client calls `whoami`; then the job connects again with
// the same provider and calls it again.
//
// Driven by tests/e2e/test_machine_clients.py; prints one JSON line per call: {"whoami": ...}.
// Environment: MCP_TOOLS_NODE_MODULES (the pinned SDK), MCP_URL, ISSUER (the only authorization
// server the credentials may go to), CLIENT_ID, SCOPE, and either CLIENT_SECRET or
// PRIVATE_KEY_PEM (PKCS#8) with SIGNING_ALG.
import { pathToFileURL } from 'node:url';

const env = process.env;
const sdk = (path) => import(pathToFileURL(`${env.MCP_TOOLS_NODE_MODULES}/@modelcontextprotocol/sdk/dist/esm/${path}`).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { ClientCredentialsProvider, PrivateKeyJwtProvider } = await sdk('client/auth-extensions.js');

const common = { clientId: env.CLIENT_ID, scope: env.SCOPE, expectedIssuer: env.ISSUER };
const provider = env.CLIENT_SECRET
  ? new ClientCredentialsProvider({ ...common, clientSecret: env.CLIENT_SECRET })
  : new PrivateKeyJwtProvider({ ...common, privateKey: env.PRIVATE_KEY_PEM, algorithm: env.SIGNING_ALG });

for (let run = 0; run < 2; run++) {
  const client = new Client({ name: 'ts-sdk-machine-client', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(env.MCP_URL), { authProvider: provider }));
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    process.stdout.write(JSON.stringify({ whoami: result.structuredContent ?? null, isError: result.isError ?? false }) + '\n');
  } finally {
    await client.close();
  }
}
process.stdout.write(JSON.stringify({ tokenType: provider.tokens()?.token_type ?? null }) + '\n');
