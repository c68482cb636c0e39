/** `trellis token create --service NAME [--ttl 24h]`: prints one join token (definition: ../program/token.ts). */
import { clientFor, handleApiError, type ClientCliOptions } from './resources.js';

export async function runTokenCreate(opts: ClientCliOptions & { service: string; ttl: string }): Promise<void> {
  try {
    const { token: value } = await clientFor(opts).createToken(opts.service, opts.ttl);
    process.stdout.write(value + '\n');
  } catch (err) {
    handleApiError(err);
  }
}
