// The risk view: what the model said of the patient in context, why, what it lacked, the model
// itself, the patient's earlier assessments, and the clinician's actions. Everything is read
// from the service's own API with the token the launch gave; text goes into the page as text
// (never as markup).
import { SmartError, call, granted, ready } from './smart.js';
import { divergingBars, percent, survivalCurve, trend } from './charts.js';

const CODE_SYSTEM = 'https://prognostics.example.org/fhir/CodeSystem/prognostics';
const REASONS = [
  ['override-not-applicable', 'The model does not apply to this patient'],
  ['override-inputs-wrong', 'The inputs the model used are wrong or out of date'],
  ['override-information-missing', 'Relevant information the model does not take'],
  ['override-clinical-judgement', 'Clinical judgement differs from the estimate'],
];

const $ = (id) => document.getElementById(id);

function setStatus(text, kind = 'info') {
  const status = $('status');
  status.textContent = text;
  status.className = `status ${kind}`;
}

function node(tag, text, className) {
  const element = document.createElement(tag);
  if (text !== undefined && text !== null) element.textContent = text;
  if (className) element.className = className;
  return element;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell ?? '—';
    tr.append(td);
  }
  return tr;
}

async function json(response) {
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const why = body?.issue?.[0]?.diagnostics || body?.error_description || `the service answered ${response.status}`;
    const error = new Error(why);
    error.status = response.status;
    throw error;
  }
  return body;
}

function entries(bundle) {
  return (bundle.entry || []).map((e) => e.resource);
}

function ageOn(birthDate, today = new Date()) {
  const born = new Date(birthDate);
  let age = today.getFullYear() - born.getFullYear();
  const before = today.getMonth() < born.getMonth() || (today.getMonth() === born.getMonth() && today.getDate() < born.getDate());
  if (before) age -= 1;
  return age;
}

function patientName(patient) {
  const name = patient.name?.[0];
  if (!name) return `Patient ${patient.id}`;
  if (name.text) return name.text;
  return [...(name.given || []), name.family].filter(Boolean).join(' ') || `Patient ${patient.id}`;
}

function renderBanner(patient, id, session) {
  if (!patient) {
    $('patient-name').textContent = `Patient ${id}`;
    $('patient-details').textContent = 'Not yet held by the prognostics service: run an assessment to read the record from the EHR.';
  } else {
    $('patient-name').textContent = patientName(patient);
    const details = [];
    if (patient.gender) details.push(patient.gender);
    if (patient.birthDate) details.push(`born ${patient.birthDate} (${ageOn(patient.birthDate)} years)`);
    const mrn = patient.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MR')) || patient.identifier?.[0];
    if (mrn) details.push(`MRN ${mrn.value}`);
    $('patient-details').textContent = details.join(' · ');
  }
  $('user').textContent = session.user ? `Signed in as ${session.user}` : '';
}

function renderRisk(view, report) {
  const main = view.horizons[view.horizons.length - 1];
  $('risk-summary').textContent = main
    ? `${percent(main.probability)} risk of ${view.outcome.display.toLowerCase()} within ${main.label} (from ${view.issued.slice(0, 10)} to ${main.until}) — ${main.band} risk.`
    : 'No horizon could be given.';
  $('risk-summary').className = `summary band-${main?.band || 'none'}`;
  const signed = report.status === 'final';
  const by = report.resultsInterpreter?.[0]?.reference;
  $('report-state').textContent = signed
    ? `Signed by ${by || 'a clinician'}: final.`
    : `Preliminary, issued ${report.issued?.slice(0, 10) || ''} by ${view.model.name} ${view.model.version}; not yet signed.`;
  const curve = $('curve');
  curve.replaceChildren(survivalCurve(view));
  $('curve-caption').textContent = `The line is the model's event-free probability for this patient from today; the points are the probabilities reported by each horizon. ${view.origin || ''}`;
  const body = $('horizons').tBodies[0];
  body.replaceChildren(...view.horizons.map((h) => row([h.label, h.until, percent(h.probability), h.band])));
  const cautions = [...view.cautions];
  if (view.outside_training) cautions.push('This patient is unlike the patients the model learnt from in some inputs: treat the estimate with more caution.');
  $('cautions').replaceChildren(...cautions.map((c) => node('li', c)));
  $('risk').hidden = false;
}

function sourceButton(session, feature) {
  if (!feature.source) return '—';
  const button = node('button', feature.source, 'link');
  button.type = 'button';
  button.addEventListener('click', () => openSource(session, feature));
  return button;
}

/** The resource a feature came from: read here at the version the model read, or, when it
 * was read from the EHR, where it lives there. */
async function openSource(session, feature) {
  const dialog = $('source');
  const reference = feature.reference || feature.source;
  $('source-title').textContent = feature.source;
  const where = $('source-where');
  where.replaceChildren();
  const facts = `${feature.feature}: ${feature.value ?? 'unknown'}${feature.unit ? ` ${feature.unit}` : ''}${feature.date ? `, ${feature.date}` : ''}`;
  if (/^https?:/.test(reference)) {
    const link = node('a', reference);
    link.href = reference;
    link.target = '_blank';
    link.rel = 'noopener';
    where.append('Read from the EHR, where it lives: ', link);
    $('source-body').textContent = facts;
    dialog.showModal();
    return;
  }
  where.textContent = `As the model read it (${reference}).`;
  $('source-body').textContent = 'Loading…';
  dialog.showModal();
  try {
    const resource = await json(await call(session, `/fhir/${reference}`));
    $('source-body').textContent = JSON.stringify(resource, null, 2);
  } catch (error) {
    $('source-body').textContent = `${facts}\n\nCould not be read: ${error.message}`;
  }
}

function renderWhy(view, session) {
  const contributions = view.contributions.filter((c) => c.contribution !== null && c.contribution !== undefined);
  $('contributions').replaceChildren(contributions.length
    ? divergingBars(
      contributions.map((c) => ({ label: c.modality, value: c.contribution, detail: `${c.contribution > 0 ? '+' : ''}${c.contribution.toFixed(2)}, weight ${(100 * c.weight).toFixed(0)} %` })),
      'Each kind of data\'s part in the risk',
      contributions.map((c) => `${c.modality}: ${c.contribution > 0 ? 'raises' : 'lowers'} the risk by ${Math.abs(c.contribution).toFixed(2)} on the log hazard scale`).join('; '),
    )
    : node('p', view.contributions.map((c) => `${c.modality}: weight ${(100 * c.weight).toFixed(0)} %`).join('; ')));
  const features = view.features;
  $('features-chart').replaceChildren(divergingBars(
    features.map((f) => ({ label: f.feature, value: f.attribution, detail: `${f.value ?? '?'}${f.unit ? ` ${f.unit}` : ''}` })),
    'The features that moved the risk most',
    features.map((f) => `${f.feature} (${f.value ?? 'unknown'}${f.unit ? ` ${f.unit}` : ''}) ${f.attribution > 0 ? 'raises' : 'lowers'} the risk`).join('; '),
  ));
  $('features').tBodies[0].replaceChildren(...features.map((f) => row([
    f.feature,
    f.value === null || f.value === undefined ? null : `${f.value}${f.unit ? ` ${f.unit}` : ''}`,
    f.date,
    `${f.attribution > 0 ? 'raises' : 'lowers'} (${f.attribution > 0 ? '+' : ''}${f.attribution.toFixed(2)})`,
    sourceButton(session, f),
  ])));
  $('why').hidden = false;
}

function renderMissing(view) {
  const items = view.missing.map((m) => {
    const li = node('li');
    li.append(node('strong', m.feature), ` (${m.modality}): ${m.reason}. `);
    li.append(m.test
      ? `To fill it: order ${m.test.display} (LOINC ${m.test.code}).`
      : 'To fill it: record it in the chart.');
    return li;
  });
  $('missing-list').replaceChildren(...(items.length ? items : [node('li', 'Nothing: every input the model takes was on record.')]));
  $('missing').hidden = false;
}

function renderTrend(reports, risks) {
  const byId = new Map(risks.map((r) => [r.id, r]));
  const assessments = reports.map((report) => {
    const risk = byId.get(report.id);
    const predictions = risk?.prediction || [];
    const main = predictions[predictions.length - 1];
    const probability = main?.probabilityDecimal;
    const band = main?.qualitativeRisk?.coding?.[0]?.code || '';
    const days = main?.whenPeriod ? (Date.parse(main.whenPeriod.end) - Date.parse(main.whenPeriod.start)) / 86400000 : NaN;
    const years = Math.round(days / 365.25);
    const label = Number.isFinite(days) ? (Math.abs(days / 365.25 - years) < 0.02 && years >= 1 ? `${years} year${years === 1 ? '' : 's'}` : `${Math.round(days)} days`) : 'the longest horizon';
    return { report, date: (report.issued || report.effectiveDateTime || '').slice(0, 10), probability, band, label, model: risk?.method?.text || '' };
  }).filter((a) => typeof a.probability === 'number');
  const horizon = assessments[0]?.label || 'the longest horizon';
  $('trend-chart').replaceChildren(assessments.length ? trend(assessments, horizon) : node('p', 'No earlier assessment.'));
  $('history').tBodies[0].replaceChildren(...assessments.map((a) => row([
    a.date, percent(a.probability), a.band, a.report.status === 'final' ? `signed (${a.report.resultsInterpreter?.[0]?.reference || ''})` : 'preliminary', a.model,
  ])));
  $('trend').hidden = false;
}

function renderModel(card) {
  if (!card) return;
  const facts = [
    ['Name', card.name], ['Version', card.version], ['Created', card.created?.slice(0, 10)],
    ['Intended use', card.intended_use], ['Intended population', card.population],
  ];
  $('model-facts').replaceChildren(...facts.flatMap(([k, v]) => [node('dt', k), node('dd', v ?? '—')]));
  const t = card.test_metrics || {};
  const measures = [
    ["Harrell's C", t.harrell_c], ["Uno's C", t.uno_c], ['Mean time-dependent AUC', t.mean_auc], ['Integrated Brier score', t.integrated_brier_score],
    ...(t.horizons || []).flatMap((h) => [[`AUC at ${h.label}`, h.auc], [`Calibration slope at ${h.label}`, h.calibration_slope]]),
  ].filter(([, v]) => typeof v === 'number');
  const caption = $('validation').caption;
  caption.textContent = `Validation on ${t.rows ?? '?'} held-out patients (${t.events ?? '?'} events)`;
  $('validation').tBodies[0].replaceChildren(...measures.map(([k, v]) => row([k, v.toFixed(3)])));
  const subgroups = (card.subgroups || []).flatMap((s) => (s.groups || []).map((g) => {
    const m = g.metrics || {};
    const small = (m.rows ?? 0) < 30 ? ' — few patients: unreliable' : '';
    return node('li', `${s.column} ${g.name}: ${m.rows ?? '?'} patients, ${m.events ?? '?'} events, Harrell's C ${typeof m.harrell_c === 'number' ? m.harrell_c.toFixed(2) : '—'}${small}`);
  }));
  $('subgroups').replaceChildren(...(subgroups.length ? subgroups : [node('li', 'No subgroup figures in the model card.')]));
  $('limitations').replaceChildren(...(card.limitations || []).map((l) => node('li', l)));
  $('model').hidden = false;
}

function renderActions(session, report) {
  const canRun = granted(session, 'RiskAssessment', 'c');
  const canSign = granted(session, 'DiagnosticReport', 'u') && Boolean(session.user);
  const signed = report?.status === 'final';
  $('run').disabled = !canRun;
  $('sign').disabled = !report || signed || !canSign;
  $('disagree-open').disabled = !report || signed || !canSign;
  const notes = [];
  if (!canRun) notes.push('Running an assessment needs the RiskAssessment.c scope, which this sign-in did not grant.');
  if (!canSign) notes.push('Signing needs a clinician\'s sign-in with the DiagnosticReport.u scope.');
  if (signed) notes.push('This assessment is signed and final; a new one is filed beside it.');
  $('actions-note').textContent = notes.join(' ');
  $('actions').hidden = false;
}

const state = { session: null, report: null, shown: null };

async function signOff(parameters, done) {
  const { session, report } = state;
  setStatus('Recording your decision…');
  try {
    await json(await call(session, `/fhir/DiagnosticReport/${report.id}/$sign-off`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Parameters', parameter: parameters }),
    }));
    await load();
    setStatus(done, 'success');
  } catch (error) {
    setStatus(`Not recorded: ${error.message}`, 'error');
  }
}

function wireActions() {
  $('run').addEventListener('click', async () => {
    setStatus('Assessing…');
    try {
      const bundle = await json(await call(state.session, `/fhir/Patient/${state.session.patient}/$risk-assessment`, {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json' },
        body: JSON.stringify({ resourceType: 'Parameters' }),
      }));
      state.shown = entries(bundle).find((r) => r.resourceType === 'DiagnosticReport')?.id ?? null;
      await load();
      setStatus('Assessed from the record as it stands now.', 'success');
    } catch (error) {
      setStatus(`No assessment: ${error.message}`, 'error');
    }
  });
  $('sign').addEventListener('click', () => signOff([{ name: 'decision', valueCode: 'sign' }], 'Signed: the report is final.'));
  const form = $('disagree-form');
  $('reasons').replaceChildren(...REASONS.map(([code, display], i) => {
    const label = node('label', null, 'reason');
    const input = document.createElement('input');
    Object.assign(input, { type: 'radio', name: 'reason', value: code, required: true, checked: i === 0 });
    label.append(input, ` ${display}`);
    return label;
  }));
  $('disagree-open').addEventListener('click', () => {
    form.hidden = false;
    form.querySelector('input').focus();
  });
  $('disagree-cancel').addEventListener('click', () => {
    form.hidden = true;
    $('disagree-open').focus();
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const reason = form.querySelector('input[name=reason]:checked')?.value;
    const comment = $('comment').value.trim();
    const parameters = [
      { name: 'decision', valueCode: 'disagree' },
      { name: 'reason', valueCoding: { system: CODE_SYSTEM, code: reason } },
    ];
    if (comment) parameters.push({ name: 'comment', valueString: comment });
    form.hidden = true;
    await signOff(parameters, 'Your disagreement is recorded; the report stays preliminary.');
  });
}

async function load() {
  const { session } = state;
  const id = session.patient;
  const [patient, reports, risks, card] = await Promise.all([
    call(session, `/fhir/Patient/${id}`).then((r) => (r.status === 404 ? null : json(r))),
    call(session, `/fhir/DiagnosticReport?subject=Patient/${id}&code=${encodeURIComponent(`${CODE_SYSTEM}|prognostic-risk-report`)}&_count=100`).then(json).then(entries),
    call(session, `/fhir/RiskAssessment?subject=Patient/${id}&_count=100`).then(json).then(entries),
    fetch('/model-card', { headers: { accept: 'application/json' } }).then((r) => (r.ok ? r.json() : null)),
  ]);
  renderBanner(patient, id, session);
  reports.sort((a, b) => (b.issued || '').localeCompare(a.issued || ''));
  // The assessment asked for (by a CDS card's link, or just run), else the latest.
  const latest = reports.find((r) => r.id === state.shown) || reports[0] || null;
  state.report = latest;
  renderModel(card);
  renderActions(session, latest);
  if (!latest) {
    setStatus('No assessment of this patient yet. Run one to see the risk.');
    return;
  }
  renderTrend(reports, risks);
  try {
    const view = await json(await call(session, `/app/api/explanations/${latest.id}`));
    renderRisk(view, latest);
    renderWhy(view, session);
    renderMissing(view);
    setStatus(`${latest === reports[0] ? 'Latest assessment' : 'Assessment'}: ${latest.issued?.slice(0, 10) || ''}.`);
  } catch (error) {
    setStatus(`The latest assessment's explanation could not be shown: ${error.message}`, 'error');
  }
}

async function main() {
  let session;
  try {
    session = await ready();
  } catch (error) {
    setStatus(error instanceof SmartError ? error.message : `The app could not start: ${error.message}`, 'error');
    return;
  }
  if (!session) {
    const status = $('status');
    status.textContent = 'Open this app from a patient\'s chart in the EHR, or ';
    const link = node('a', 'sign in and pick a patient');
    link.href = '/app/launch';
    status.append(link, '.');
    return;
  }
  if (!session.patient) {
    setStatus('The EHR gave no patient in context: open the app from a patient\'s chart.', 'error');
    return;
  }
  state.session = session;
  try {
    state.shown = session.appContext ? JSON.parse(session.appContext).report ?? null : null;
  } catch {
    state.shown = null;
  }
  wireActions();
  try {
    await load();
  } catch (error) {
    setStatus(`The patient's assessments could not be read: ${error.message}`, 'error');
  }
}

main();
