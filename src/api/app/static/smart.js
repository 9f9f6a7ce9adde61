// SMART App Launch 2.x for the risk view: the authorization code flow with PKCE (S256) as a
// public client. The launch page starts it (authorize); the app's page finishes it (ready):
// the code is exchanged through the service's /app/token, which forwards it to the launching
// EHR's token endpoint, so the page only ever talks to its own origin. The token is kept in
// this tab's sessionStorage only.

const PENDING = 'prognostics.smart.pending.';
const SESSION = 'prognostics.smart.session';

function base64url(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomText(length) {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return base64url(bytes);
}

async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** Sends the browser to the EHR's authorization endpoint. `config` comes from /app/launch. */
export async function authorize(config) {
  const verifier = randomText(48);
  const state = randomText(24);
  sessionStorage.setItem(PENDING + state, JSON.stringify({ verifier, iss: config.iss }));
  const url = new URL(config.authorizeEndpoint);
  const params = {
    response_type: 'code',
    client_id: config.clientId,
    redirect_uri: config.redirectUri,
    scope: config.scope,
    state,
    aud: config.iss,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: 'S256',
  };
  if (config.launch) params.launch = config.launch;
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  window.location.assign(url.toString());
}

/** The claims of a JWT, unverified (the id token's `fhirUser`, for display only). */
function claimsOf(jwt) {
  try {
    const payload = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

export class SmartError extends Error {}

/**
 * The session: finishes a redirect back from the EHR (`?code=…&state=…`), else the session
 * this tab already has. Null when the app was opened without a launch.
 */
export async function ready() {
  const here = new URL(window.location.href);
  const error = here.searchParams.get('error');
  if (error) {
    throw new SmartError(`The EHR refused the sign-in: ${here.searchParams.get('error_description') || error}`);
  }
  const code = here.searchParams.get('code');
  const state = here.searchParams.get('state');
  if (code && state) {
    const pending = sessionStorage.getItem(PENDING + state);
    sessionStorage.removeItem(PENDING + state);
    if (!pending) throw new SmartError('This sign-in was not started here (unknown state); open the app again from the chart.');
    const { verifier, iss } = JSON.parse(pending);
    const response = await fetch('/app/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ iss, code, code_verifier: verifier }),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok || !answer.access_token) {
      throw new SmartError(`The sign-in could not be completed: ${answer.error_description || answer.error || response.status}`);
    }
    const claims = answer.id_token ? claimsOf(answer.id_token) : {};
    const session = {
      iss,
      accessToken: answer.access_token,
      patient: answer.patient,
      scope: answer.scope || '',
      user: claims.fhirUser || answer.fhirUser || null,
      // A CDS card's link names the assessment to open (`{"report": "…"}`).
      appContext: answer.appContext || null,
      expiresAt: Date.now() + 1000 * (answer.expires_in || 300),
    };
    sessionStorage.setItem(SESSION, JSON.stringify(session));
    // The code is spent: it leaves the address bar and the history.
    window.history.replaceState(null, '', '/app/');
    return session;
  }
  const kept = sessionStorage.getItem(SESSION);
  if (!kept) return null;
  const session = JSON.parse(kept);
  if (session.expiresAt <= Date.now()) {
    sessionStorage.removeItem(SESSION);
    throw new SmartError('The session has expired; open the app again from the chart.');
  }
  return session;
}

/** Whether the session's scopes grant `interaction` (a SMART v2 letter) on `type`. */
export function granted(session, type, letter) {
  return session.scope.split(/\s+/).some((scope) => {
    const match = /^(patient|user|system)\/([A-Za-z*]+)\.([a-z*]+)$/.exec(scope);
    if (!match) return false;
    const [, , t, letters] = match;
    const v1 = { read: 'rs', write: 'cud', '*': 'cruds' }[letters];
    return (t === '*' || t === type) && (v1 ?? letters).includes(letter);
  });
}

/** A request to the service's API with the session's token. */
export async function call(session, path, options = {}) {
  const headers = { accept: 'application/fhir+json, application/json', authorization: `Bearer ${session.accessToken}`, ...(options.headers || {}) };
  return fetch(path, { ...options, headers });
}
