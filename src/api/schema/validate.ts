import type { z } from 'zod';

/** One validation failure: the exact field path and the reason. */
export interface FieldError { path: string; message: string }

export class ValidationError extends Error {
  readonly errors: FieldError[];
  constructor(errors: FieldError[], prefix = '') {
    super(errors.map((e) => `${prefix}${e.path}: ${e.message}`).join('; '));
    this.name = 'ValidationError';
    this.errors = errors;
  }
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}

export function zodErrors(err: z.ZodError): FieldError[] {
  return err.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
}

/** Parses or throws a ValidationError listing every field path and reason. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, prefix = ''): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(zodErrors(result.error), prefix);
  return result.data;
}
