/**
 * Measuring strings as UTF-8 without encoding them, for the cores that limit names and keys in bytes (jobspec,
 * partitions). A string with a lone UTF-16 surrogate has no UTF-8 form: callers refuse it (`isWellFormed`) before
 * they measure it.
 */

/** True when every surrogate in `text` is part of a pair (String.prototype.isWellFormed, which ES2022 lacks). */
export function isWellFormed(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return false;
    const next = text.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/** Bytes of `text` in UTF-8, without encoding it (a lone surrogate counts as U+FFFD, as TextEncoder writes it). */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
