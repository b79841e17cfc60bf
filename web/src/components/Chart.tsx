/** A small line chart in SVG: the last N points of one series, scaled to its own maximum. */
export function Chart({ title, points, format }: { title: string; points: number[]; format: (v: number) => string }) {
  const width = 300;
  const height = 80;
  const max = Math.max(1e-9, ...points);
  const step = points.length > 1 ? width / (points.length - 1) : width;
  const path = points.map((v, i) => `${(i * step).toFixed(1)},${(height - (v / max) * (height - 4) - 2).toFixed(1)}`).join(' ');
  const last = points.at(-1);
  return (
    <figure class="chart" data-testid={`chart-${title.toLowerCase().replace(/\W+/g, '-')}`}>
      <figcaption>
        {title} <strong>{last === undefined ? '–' : format(last)}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" role="img" aria-label={title}>
        <polyline points={path} fill="none" stroke="currentColor" stroke-width="1.5" />
      </svg>
    </figure>
  );
}
