// Live curves (uPlot): training and validation loss, and bits per byte, against the optimizer step. Points are
// appended as the worker reports them; the canvas is redrawn at most every 250 ms.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export class Curve {
  readonly steps: number[] = [];
  readonly train: (number | null)[] = [];
  readonly val: (number | null)[] = [];
  private plot: uPlot | null = null;
  private dirty = false;

  constructor(private readonly el: HTMLElement, private readonly title: string, private readonly yLabel: string,
              private readonly names: [string, string]) {
    setInterval(() => this.draw(), 250);
    new ResizeObserver(() => this.plot?.setSize(this.size())).observe(el);
  }

  private size(): { width: number; height: number } {
    return { width: Math.max(240, this.el.clientWidth), height: 260 };
  }

  reset(): void {
    this.steps.length = 0; this.train.length = 0; this.val.length = 0;
    this.dirty = true;
  }

  /** The training value of a step (steps arrive in order). */
  addTrain(step: number, v: number | null): void {
    this.steps.push(step); this.train.push(v); this.val.push(null);
    this.dirty = true;
  }

  /** The validation value after `step` (on the step's own point when there is one). */
  addVal(step: number, v: number | null): void {
    const last = this.steps.length - 1;
    if (last >= 0 && this.steps[last] === step) this.val[last] = v;
    else { this.steps.push(step); this.train.push(null); this.val.push(v); }
    this.dirty = true;
  }

  /** Validation values so far, as [step, value]. */
  valPoints(): [number, number][] {
    return this.steps.flatMap((s, i) => (this.val[i] === null ? [] : [[s, this.val[i]!] as [number, number]]));
  }

  private draw(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const data: uPlot.AlignedData = [this.steps, this.train, this.val];
    if (this.plot) { this.plot.setData(data); return; }
    this.plot = new uPlot({
      title: this.title,
      ...this.size(),
      scales: { x: { time: false } },
      axes: [{ label: 'optimizer step' }, { label: this.yLabel }],
      series: [
        { label: 'step' },
        { label: this.names[0], stroke: '#2563eb', width: 1.5, spanGaps: true, value: (_u, v) => (v == null ? '–' : v.toFixed(4)) },
        { label: this.names[1], stroke: '#dc2626', width: 2, spanGaps: true, points: { show: true, size: 6 }, value: (_u, v) => (v == null ? '–' : v.toFixed(4)) },
      ],
    }, data, this.el);
  }
}
