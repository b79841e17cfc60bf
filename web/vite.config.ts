import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/** The browser UI: served by the daemon from dist/web-ui under /ui/ (src/daemon/web-ui-plugin.ts). */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  // Preact's JSX runtime, without a framework plugin.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  resolve: { alias: { react: 'preact/compat', 'react-dom': 'preact/compat' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/web-ui', import.meta.url)),
    emptyOutDir: true,
    // noVNC uses top-level await.
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
    sourcemap: false,
  },
  logLevel: 'warn',
});
