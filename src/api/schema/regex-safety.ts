/**
 * Route regexes run per request, so they must run in linear time. JavaScript's engine backtracks;
 * we accept only the subset that cannot blow up: no backreferences, no lookaround, and no
 * quantified group that itself contains a quantifier (the classic (a+)+ shape).
 * Returns a reason when the pattern is refused, or null when it is accepted.
 */
export function isLinearTimeRegex(pattern: string): string | null {
  if (pattern.length > 1024) return 'regex longer than 1024 characters';
  try {
    new RegExp(pattern, 'u');
  } catch (err) {
    return `invalid regex: ${(err as Error).message}`;
  }
  if (/\\[1-9]|\\k</.test(pattern)) return 'regex backreferences are not linear-time and are refused';
  if (/\(\?<?[=!]/.test(pattern)) return 'regex lookaround is not linear-time and is refused';
  // Walk the groups: a quantified group whose body contains a quantifier may backtrack exponentially.
  const stack: { hasQuantifier: boolean }[] = [];
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') { i++; continue; }
    if (inClass) { if (c === ']') inClass = false; continue; }
    if (c === '[') { inClass = true; continue; }
    if (c === '(') { stack.push({ hasQuantifier: false }); continue; }
    if (c === ')') {
      const group = stack.pop();
      const next = pattern[i + 1];
      const quantified = next === '*' || next === '+' || next === '?' || next === '{';
      if (group?.hasQuantifier && quantified && next !== '?') return 'nested quantifiers such as (a+)+ can backtrack exponentially and are refused';
      if (quantified && stack.length > 0) stack[stack.length - 1]!.hasQuantifier = true;
      if (group?.hasQuantifier && stack.length > 0) stack[stack.length - 1]!.hasQuantifier = true;
      continue;
    }
    if ((c === '*' || c === '+' || c === '{') && stack.length > 0) stack[stack.length - 1]!.hasQuantifier = true;
  }
  return null;
}
