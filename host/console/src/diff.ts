// A line diff (longest common subsequence), enough for rule scripts (at most 100 KiB).
export type DiffLine = { kind: ' ' | '+' | '-'; text: string };

export function diffLines(before: string, after: string): DiffLine[] {
  const a = before.split('\n');
  const b = after.split('\n');
  // Trim the common head and tail first: most edits are small.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const out: DiffLine[] = a.slice(0, head).map((text) => ({ kind: ' ', text }));
  if (x.length * y.length > 4_000_000) {
    // Too big for the table: show it as a replacement.
    x.forEach((text) => out.push({ kind: '-', text }));
    y.forEach((text) => out.push({ kind: '+', text }));
  } else {
    const n = x.length;
    const m = y.length;
    const lcs: Uint32Array[] = [];
    for (let i = 0; i <= n; i++) lcs.push(new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) {
        out.push({ kind: ' ', text: x[i] });
        i++;
        j++;
      } else if (j < m && (i >= n || lcs[i][j + 1] >= lcs[i + 1][j])) {
        out.push({ kind: '+', text: y[j] });
        j++;
      } else {
        out.push({ kind: '-', text: x[i] });
        i++;
      }
    }
  }
  a.slice(a.length - tail).forEach((text) => out.push({ kind: ' ', text }));
  return out;
}
