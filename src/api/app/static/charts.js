// The app's plots, drawn as SVG (no library, nothing from another origin). Each has a title
// and description for assistive technology; the tables beside them carry the same numbers.

const SVG = 'http://www.w3.org/2000/svg';

function el(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(width, height, title, description) {
  const id = `chart-${Math.random().toString(36).slice(2)}`;
  const svg = el('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d`, class: 'plot',
  });
  svg.append(el('title', { id: `${id}-t` }, title), el('desc', { id: `${id}-d` }, description));
  return svg;
}

export const percent = (p) => `${(100 * p).toFixed(p < 0.1 ? 1 : 0)} %`;

/** Bands of the event probability, as the service names them. */
export const BANDS = [
  { name: 'low', upTo: 0.1 },
  { name: 'moderate', upTo: 0.3 },
  { name: 'high', upTo: 1 },
];

/**
 * The event-free probability from today: the model's curve for this patient, the risk bands
 * shaded, the horizons marked with the probabilities reported for them.
 */
export function survivalCurve(view) {
  const width = 640;
  const height = 280;
  const m = { left: 56, right: 16, top: 16, bottom: 44 };
  const points = view.curve;
  const lastDay = Math.max(
    points.length ? points[points.length - 1].days : 0,
    ...view.horizons.map((h) => h.days),
    1,
  );
  const x = (days) => m.left + ((width - m.left - m.right) * days) / lastDay;
  const y = (survival) => m.top + (height - m.top - m.bottom) * (1 - survival);
  const horizonText = view.horizons.map((h) => `${h.label}: ${percent(h.probability)} risk (${h.band})`).join('; ');
  const svg = frame(
    width,
    height,
    'Event-free probability from today',
    `The probability of staying free of ${view.outcome.display.toLowerCase()} over time. ${horizonText}.`,
  );
  // Bands, as event-free probability: low above 90 %, moderate 70–90 %, high below 70 %.
  let top = 1;
  for (const band of BANDS) {
    const bottom = 1 - band.upTo;
    svg.append(el('rect', {
      x: m.left, y: y(top), width: width - m.left - m.right, height: y(bottom) - y(top), class: `band band-${band.name}`,
    }));
    svg.append(el('text', { x: width - m.right - 4, y: y(top) + 14, 'text-anchor': 'end', class: 'band-label' }, `${band.name} risk`));
    top = bottom;
  }
  // Axes.
  for (const s of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el('line', { x1: m.left, x2: width - m.right, y1: y(s), y2: y(s), class: 'grid' }));
    svg.append(el('text', { x: m.left - 6, y: y(s) + 4, 'text-anchor': 'end', class: 'tick' }, `${s * 100} %`));
  }
  const years = lastDay / 365.25;
  const step = years > 6 ? 2 : 1;
  for (let yr = 0; yr <= years + 1e-9; yr += step) {
    svg.append(el('text', { x: x(yr * 365.25), y: height - m.bottom + 18, 'text-anchor': 'middle', class: 'tick' }, `${yr}`));
  }
  svg.append(el('text', { x: (m.left + width - m.right) / 2, y: height - 6, 'text-anchor': 'middle', class: 'axis-label' }, 'years from today'));
  // The curve.
  if (points.length > 1) {
    const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.days).toFixed(1)},${y(1 - p.probability).toFixed(1)}`).join(' ');
    svg.append(el('path', { d, class: 'curve' }));
  }
  // The horizons.
  for (const h of view.horizons) {
    const cx = x(h.days);
    const cy = y(1 - h.probability);
    svg.append(el('line', { x1: cx, x2: cx, y1: m.top, y2: height - m.bottom, class: 'horizon' }));
    svg.append(el('circle', { cx, cy, r: 5, class: `marker band-${h.band}` }));
    svg.append(el('text', { x: cx + 6, y: cy - 8, class: 'marker-label' }, `${h.label}: ${percent(h.probability)}`));
  }
  return svg;
}

/**
 * Horizontal bars around zero: `items` of { label, value, detail }; positive values (raising
 * the risk) to the right.
 */
export function divergingBars(items, title, description) {
  const width = 640;
  const row = 28;
  const m = { left: 200, right: 150, top: 8, bottom: 8 };
  const height = m.top + m.bottom + row * Math.max(items.length, 1);
  const svg = frame(width, height, title, description);
  const largest = Math.max(...items.map((i) => Math.abs(i.value)), 1e-9);
  const zero = m.left + (width - m.left - m.right) / 2;
  const scale = (width - m.left - m.right) / 2 / largest;
  items.forEach((item, i) => {
    const yTop = m.top + i * row;
    const length = Math.abs(item.value) * scale;
    const raises = item.value > 0;
    svg.append(el('text', { x: m.left - 8, y: yTop + 18, 'text-anchor': 'end', class: 'bar-label' }, item.label));
    svg.append(el('rect', {
      x: raises ? zero : zero - length, y: yTop + 5, width: Math.max(length, 1), height: row - 10,
      class: raises ? 'bar raises' : 'bar lowers',
    }));
    svg.append(el('text', {
      x: raises ? zero + length + 4 : zero - length - 4, y: yTop + 18, 'text-anchor': raises ? 'start' : 'end', class: 'bar-value',
    }, item.detail));
  });
  svg.append(el('line', { x1: zero, x2: zero, y1: m.top, y2: height - m.bottom, class: 'axis' }));
  return svg;
}

/** Each assessment's risk at the main horizon over the dates they were made. */
export function trend(assessments, horizonLabel) {
  const width = 640;
  const height = 200;
  const m = { left: 56, right: 16, top: 16, bottom: 36 };
  const svg = frame(
    width,
    height,
    `Risk within ${horizonLabel} over time`,
    assessments.map((a) => `${a.date}: ${percent(a.probability)}`).join('; '),
  );
  const times = assessments.map((a) => Date.parse(a.date));
  const first = Math.min(...times);
  const last = Math.max(...times);
  const span = Math.max(last - first, 86_400_000);
  const top = Math.min(1, Math.max(...assessments.map((a) => a.probability)) * 1.25 + 0.05);
  const x = (t) => (assessments.length === 1 ? (m.left + width - m.right) / 2 : m.left + ((width - m.left - m.right) * (t - first)) / span);
  const y = (p) => m.top + (height - m.top - m.bottom) * (1 - p / top);
  for (const p of [0, top / 2, top]) {
    svg.append(el('line', { x1: m.left, x2: width - m.right, y1: y(p), y2: y(p), class: 'grid' }));
    svg.append(el('text', { x: m.left - 6, y: y(p) + 4, 'text-anchor': 'end', class: 'tick' }, percent(p)));
  }
  const ordered = assessments.map((a, i) => ({ ...a, t: times[i] })).sort((a, b) => a.t - b.t);
  if (ordered.length > 1) {
    svg.append(el('path', { d: ordered.map((a, i) => `${i ? 'L' : 'M'}${x(a.t).toFixed(1)},${y(a.probability).toFixed(1)}`).join(' '), class: 'curve' }));
  }
  for (const a of ordered) {
    svg.append(el('circle', { cx: x(a.t), cy: y(a.probability), r: 5, class: `marker band-${a.band}` }));
    svg.append(el('text', { x: x(a.t), y: height - m.bottom + 18, 'text-anchor': 'middle', class: 'tick' }, a.date));
  }
  return svg;
}
