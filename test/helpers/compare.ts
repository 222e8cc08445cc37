/** max |a - b| over positions where mask is 1; `width` values per position (padded positions are not meaningful). */
export function maxMaskedDiff(a: ArrayLike<number>, b: ArrayLike<number>, mask: number[][], width: number): number {
  let max = 0;
  const T = mask[0].length;
  mask.forEach((row, bi) =>
    row.forEach((m, t) => {
      if (!m) return;
      for (let k = 0; k < width; k++) max = Math.max(max, Math.abs(a[(bi * T + t) * width + k] - b[(bi * T + t) * width + k]));
    }),
  );
  return max;
}
