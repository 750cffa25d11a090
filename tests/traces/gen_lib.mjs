// What the trace generators share.

// Their random source: xorshift32, the same sequence on every machine, so a generated
// trace is reproducible from its seed.
export function xorshift32(seed) {
  let state = seed;
  const next = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
  return {
    next,
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
  };
}

// FORMAT.md's rule for trace authors: a change call passes a value other than the last one
// passed for its slot. `last` maps slot -> last value passed; the returned `fresh(slot,
// make)` draws from `make` until the value differs, and records it.
export function freshValues(last) {
  return (slot, make) => {
    for (;;) {
      const v = make();
      if (last.get(slot) !== v) {
        last.set(slot, v);
        return v;
      }
    }
  };
}
