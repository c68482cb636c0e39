/** A small time-series chart (uPlot, canvas): one series over time, with the latest value as text beside it. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

interface Props {
  t: number[];
  values: number[];
  color: string;
  /** Default: the container's width at mount. */
  width?: number;
  height?: number;
  /** Fixed y range (e.g. 0..100 for a percentage); default: auto from 0. */
  range?: [number, number];
  label: string;
}

export function Sparkline({ t, values, color, width, height = 54, range, label }: Props) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot>();

  useEffect(() => {
    if (!el.current) return;
    const opts: uPlot.Options = {
      width: width ?? Math.max(80, el.current.clientWidth || 200), height,
      cursor: { show: false },
      legend: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      padding: [4, 2, 2, 2],
      scales: {
        x: { time: true },
        y: range ? { range } : { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: color, width: 1.6, fill: `${color}22`, points: { show: false } }],
    };
    plot.current = new uPlot(opts, [t, values], el.current);
    return () => { plot.current?.destroy(); plot.current = undefined; };
  }, [width, height, color]);

  useEffect(() => { plot.current?.setData([t, values]); }, [t, values]);

  return <div class="spark" ref={el} role="img" aria-label={label} data-points={t.length} />;
}
