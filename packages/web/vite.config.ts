// Vite builds the UI into dist/, which the server serves at `/` (packages/xenstack/src/server/app.ts).
// No React plugin: esbuild compiles TSX itself; fast refresh is not worth another dependency here.
import { defineConfig } from 'vite'

export default defineConfig({
  root: '.',
  base: '/',
  esbuild: { jsx: 'automatic' },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, target: 'es2022' },
  server: { proxy: { '/api': 'http://127.0.0.1:8700' } },
})
