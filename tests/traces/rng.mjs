// The trace generators' random source: xorshift32, the same sequence on every machine, so
// a generated trace is reproducible from its seed.
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
