/**
 * Builds the web dashboard (Preact + TypeScript) into dist/dashboard, which the control plane serves at `/`.
 * `npm run build` (and `npm ci`, through `prepare`) runs it after tsc. The SDK (src/sdk/client.ts) is bundled in:
 * the dashboard talks to the API only through TrellisClient.
 */
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  publicDir: 'public',
  logLevel: 'warn',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    // `npx vite dashboard` during development: API calls go to a running control plane.
    proxy: { '/api': process.env.TRELLIS_API ?? 'http://127.0.0.1:15000' },
  },
});
