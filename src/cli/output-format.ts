/** `-o table|yaml|json`: the option's values and parser (no formatting code, so command definitions stay light). */
export type OutputFormat = 'table' | 'yaml' | 'json';
export const OUTPUT_FORMATS: OutputFormat[] = ['table', 'yaml', 'json'];

export function parseOutputFormat(value: string): OutputFormat {
  const v = value.toLowerCase();
  if (v === 'table' || v === 'yaml' || v === 'json') return v;
  if (v === 'yml') return 'yaml';
  if (v === 'wide') return 'table';
  throw new Error(`unknown output format "${value}": use table, yaml or json`);
}
