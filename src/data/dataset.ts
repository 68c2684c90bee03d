// Datasets: anything with a length and random access by index. Kept free of tensors (this folder runs in a Web
// Worker); a batch is plain typed arrays plus shapes, and `train` turns it into tensors.

/** Random-access collection of examples. `name` (optional) is used in error messages ("… in <name>"). */
export interface Dataset<T> {
  readonly length: number;
  get(index: number): T;
  readonly name?: string;
}

/** A dataset over an in-memory array (PyTorch's TensorDataset role: one example per entry). */
export class ArrayDataset<T> implements Dataset<T> {
  readonly name: string;
  constructor(private readonly items: readonly T[], name = 'an in-memory array') {
    this.name = name;
  }
  get length(): number {
    return this.items.length;
  }
  get(index: number): T {
    checkIndex(index, this.items.length, this.name);
    return this.items[index]!;
  }
}

/**
 * Zips equal-length columns into tuples, like `torch.utils.data.TensorDataset(a, b)`: `get(i)` returns
 * `[a[i], b[i], …]`. Columns are arrays of examples (e.g. `Int32Array[]` rows or `number[]` labels).
 */
export class TensorDataset<Cols extends readonly ArrayLike<unknown>[]> implements Dataset<{ [K in keyof Cols]: Cols[K] extends ArrayLike<infer E> ? E : never }> {
  readonly name: string;
  private readonly cols: Cols;
  constructor(...cols: Cols) {
    if (cols.length === 0) throw new Error('TensorDataset needs at least one column');
    const n = cols[0]!.length;
    cols.forEach((c, k) => {
      if (c.length !== n) throw new Error(`TensorDataset: column ${k} has ${c.length} entries, column 0 has ${n}; all columns must have the same length`);
    });
    this.cols = cols;
    this.name = 'a TensorDataset';
  }
  get length(): number {
    return this.cols[0]!.length;
  }
  get(index: number): { [K in keyof Cols]: Cols[K] extends ArrayLike<infer E> ? E : never } {
    checkIndex(index, this.length, this.name);
    return this.cols.map((c) => c[index]) as never;
  }
}

/** A dataset whose examples are `fn(base.get(i))`, computed on access (e.g. tokenizing text lazily). */
export class MappedDataset<S, T> implements Dataset<T> {
  readonly name: string | undefined;
  constructor(private readonly base: Dataset<S>, private readonly fn: (item: S, index: number) => T) {
    this.name = base.name;
  }
  get length(): number {
    return this.base.length;
  }
  get(index: number): T {
    return this.fn(this.base.get(index), index);
  }
}

export function checkIndex(index: number, length: number, name: string | undefined): void {
  if (!Number.isInteger(index) || index < 0 || index >= length) {
    throw new RangeError(`index ${index} is out of range for ${name ?? 'a dataset'} of ${length} examples (valid: 0…${length - 1})`);
  }
}
