/**
 * How a refusal names the operator's value: in single quotes, as typed, cut
 * at QUOTED_MAX characters so a 100,000-character argument makes a short
 * message ("'aaaa…(100000 chars)'"). Pure. scripts/lib.sh's vfp_quoted and
 * scripts/ipv4.awk's quoted() cut the same way.
 */
export const QUOTED_MAX = 64;

/** `'value'`, or its first QUOTED_MAX characters and "…(N chars)" inside the quotes when longer. */
export function quoted(value: unknown): string {
  const s = String(value);
  return s.length <= QUOTED_MAX ? `'${s}'` : `'${s.slice(0, QUOTED_MAX)}…(${s.length} chars)'`;
}
