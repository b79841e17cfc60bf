import { useState } from 'preact/hooks';

export interface Point {
  /** Epoch milliseconds. */
  t: number;
  v: number;
}

const WIDTH = 300;
const HEIGHT = 90;

const clock = (t: number) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

/**
 * A line chart in SVG over a time window ending now: a time axis (start, middle, end), the scale's top in the
 * series' unit, and the value under the pointer (or under the cursor moved with the arrow keys when focused).
 */
export function Chart({ title, points, format, from, to }: { title: string; points: Point[]; format: (v: number) => string; from: number; to: number }) {
  const [cursor, setCursor] = useState<number | undefined>();
  const visible = points.filter((p) => p.t >= from && p.t <= to);
  const max = Math.max(1e-9, ...visible.map((p) => p.v));
  const span = Math.max(1, to - from);
  const x = (t: number) => ((t - from) / span) * WIDTH;
  const y = (v: number) => HEIGHT - (v / max) * (HEIGHT - 4) - 2;
  const path = visible.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  const last = points.at(-1);
  const hovered = cursor === undefined ? undefined : visible[Math.min(cursor, visible.length - 1)];
  const id = `chart-${title.toLowerCase().replace(/\W+/g, '-')}`;

  const nearest = (clientX: number, box: DOMRect) => {
    const t = from + ((clientX - box.left) / box.width) * span;
    let best = -1;
    for (let i = 0; i < visible.length; i++) if (best < 0 || Math.abs(visible[i]!.t - t) < Math.abs(visible[best]!.t - t)) best = i;
    return best < 0 ? undefined : best;
  };
  const onKey = (e: KeyboardEvent) => {
    if (visible.length === 0) return;
    const current = cursor ?? visible.length - 1;
    if (e.key === 'ArrowLeft') setCursor(Math.max(0, current - 1));
    else if (e.key === 'ArrowRight') setCursor(Math.min(visible.length - 1, current + 1));
    else if (e.key === 'Escape') setCursor(undefined);
    else return;
    e.preventDefault();
  };

  return (
    <figure class="chart" data-testid={id}>
      <figcaption>
        {title} <strong>{last === undefined ? '–' : format(last.v)}</strong>
      </figcaption>
      <div class="chart-scale" aria-hidden="true">
        <span>{visible.length === 0 ? '' : format(max)}</span>
        <span class="chart-hover" data-testid="chart-hover">
          {hovered === undefined ? '' : `${clock(hovered.t)}: ${format(hovered.v)}`}
        </span>
      </div>
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        preserveAspectRatio="none"
        role="img"
        tabIndex={0}
        aria-label={`${title} from ${clock(from)} to ${clock(to)}${hovered === undefined ? '' : `; at ${clock(hovered.t)}: ${format(hovered.v)}`}. Arrow keys move along the line.`}
        onPointerMove={(e) => setCursor(nearest(e.clientX, (e.currentTarget as SVGSVGElement).getBoundingClientRect()))}
        onPointerLeave={() => setCursor(undefined)}
        onKeyDown={onKey}
        onBlur={() => setCursor(undefined)}
      >
        <line x1="0" y1={HEIGHT - 0.5} x2={WIDTH} y2={HEIGHT - 0.5} class="axis" />
        <polyline points={path} fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke" />
        {hovered !== undefined && <line x1={x(hovered.t)} y1="0" x2={x(hovered.t)} y2={HEIGHT} class="cursor" vector-effect="non-scaling-stroke" />}
      </svg>
      <div class="chart-axis" aria-hidden="true" data-testid="chart-axis">
        <span>{clock(from)}</span>
        <span>{clock(from + span / 2)}</span>
        <span>{clock(to)}</span>
      </div>
    </figure>
  );
}
