// A real OAuth 2.0 / OpenID Connect authorization server for the integration tests: the
// OpenID-certified `oidc-provider`, configured as a SMART on FHIR authorization server would be.
//
//   node server.mjs CONFIG.json
//
// CONFIG names the resource server (`audience`: the FHIR base URL the tokens are for) and the
// clients:
//   - `backend`: SMART Backend Services. `client_credentials` with a `private_key_jwt` client
//     assertion checked against the client's registered public `jwks`; `scope` is what it may
//     be granted (SMART v2 system/ scopes).
//   - `app`: a user-facing SMART app. A public client using the authorization code grant with
//     PKCE (S256) at `redirect_uri`; the signed-in user is `fhirUser`, and the patient in
//     context (`patient`) goes into the access token and the token response, as SMART's
//     `launch/patient` asks.
//   - `docs` (optional): what an API page such as Swagger UI uses, `client_credentials` with a
//     `client_secret` (HTTP Basic), from a browser page on a loopback origin (CORS).
// Access tokens are JWTs signed RS256 with a key made at start, published at the discovery
// document's `jwks_uri`. The sign-in and consent pages are replaced by an interaction that
// signs in the configured user at once and grants what was asked (a test has no person to
// click), so the authorization request, the redirects, the code and the PKCE check are all the
// provider's own. Prints `listening PORT` once it accepts connections.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

// stdout carries the one `listening` line, and its reader may be gone after it: the provider's
// notices go to stderr.
const announce = (line) => process.stdout.write(`${line}\n`);
console.log = console.info = console.warn = console.error;

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const tokenLifetime = config.token_lifetime ?? 300;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-signing-key', alg: 'RS256', use: 'sig' };

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const clients = [
  {
    client_id: config.backend.client_id,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: config.backend.alg ?? 'RS384',
    jwks: config.backend.jwks,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: config.backend.scope,
  },
  {
    client_id: config.app.client_id,
    token_endpoint_auth_method: 'none',
    application_type: 'native',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [config.app.redirect_uri],
    scope: `openid fhirUser launch launch/patient ${config.app.scope}`,
  },
];
if (config.docs) {
  clients.push({
    client_id: config.docs.client_id,
    client_secret: config.docs.client_secret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: config.docs.scope,
  });
}

// The resource scopes the FHIR server knows: whatever a client may have.
const resourceScopes = [config.backend.scope, config.app.scope, config.docs?.scope ?? '']
  .join(' ')
  .trim();

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  // Every scope a client may be registered with: OpenID's and the FHIR server's.
  scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', ...resourceScopes.split(' ')],
  claims: { openid: ['sub'], fhirUser: ['fhirUser'] },
  pkce: { required: () => true },
  ttl: {
    AccessToken: tokenLifetime,
    ClientCredentials: tokenLifetime,
    AuthorizationCode: 60,
    IdToken: tokenLifetime,
    Interaction: 600,
    Grant: 600,
    Session: 600,
  },
  clientAuthMethods: ['private_key_jwt', 'client_secret_basic', 'none'],
  // Browser pages may call the token endpoint for the docs client from a loopback origin.
  clientBasedCORS: (_ctx, origin, client) =>
    client.clientId === config.docs?.client_id && /^http:\/\/127\.0\.0\.1:\d+$/.test(origin),
  enabledJWA: { clientAuthSigningAlgValues: ['RS384', 'ES384', 'RS256', 'ES256'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Tokens are for the FHIR server unless the client names it with `resource` (SMART
      // clients usually do not).
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== config.audience) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: resourceScopes,
          audience: config.audience,
          accessTokenTTL: tokenLifetime,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // SMART's claims in the access token: the client, the user and the patient in context.
  extraTokenClaims: (_ctx, token) => {
    const claims = { client_id: token.clientId };
    if (token.accountId) {
      claims.fhirUser = config.app.fhirUser;
      claims.patient = config.app.patient;
    }
    return claims;
  },
  extraParams: ['launch', 'aud'],
  findAccount: (_ctx, id) => ({
    accountId: id,
    claims: () => ({ sub: id, fhirUser: config.app.fhirUser }),
  }),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
});

// SMART's token response carries the patient in context beside the token.
provider.on('grant.success', (ctx) => {
  if (ctx.body && ctx.oidc.entities.AccessToken?.accountId) {
    ctx.body.patient = config.app.patient;
  }
});

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const accountId = config.app.user;
  const { missingOIDCScope = [], missingOIDCClaims = [], missingResourceScopes = {} } =
    details.prompt.details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(missingOIDCScope.join(' '));
  grant.addOIDCClaims(missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((error) => {
      res.statusCode = 500;
      res.end(String(error));
    });
  } else {
    callback(req, res);
  }
});
announce(`listening ${server.address().port}`);
