// How parallel kernels split their work: thread tid of nth takes an even share of n units, and a reduction across
// threads is finished inside the kernel by the last thread to arrive (no second call, no host work).

/** The units [a, b) of n that thread tid of nth takes, packed as (a << 32) | b. */
// @ts-ignore: decorator
@inline
export function share(n: i32, tid: i32, nth: i32): i64 {
  const a = <i32>((<i64>n * tid) / nth), b = <i32>((<i64>n * (tid + 1)) / nth);
  return (<i64>a << 32) | <i64>b;
}

/**
 * Counts this thread in at the i32 at `counter` (zeroed by the caller before the job) and says whether it is the
 * last of nth to do so. Everything the other threads stored before counting in is visible to the last one (the
 * atomic add is sequentially consistent), so it can combine their partial results.
 */
// @ts-ignore: decorator
@inline
export function arriveLast(counter: usize, nth: i32): bool {
  return atomic.add<i32>(counter, 1) == nth - 1;
}

/**
 * Like share(), but thread 0 takes `first` units of the n (the caller's thread, when it runs a faster path than
 * the workers: the native backend's BLAS) and threads 1 … nth−1 split the rest evenly. first < 0: share().
 */
// @ts-ignore: decorator
@inline
export function shareFirst(n: i32, tid: i32, nth: i32, first: i32): i64 {
  if (first < 0 || nth == 1) return share(n, tid, nth);
  const f = min(first, n);
  if (tid == 0) return <i64>f;
  const r = share(n - f, tid - 1, nth - 1);
  return r + ((<i64>f << 32) | <i64>f);
}
