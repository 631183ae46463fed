import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The console is served by the chat service at / (workers/api/console.py): hashed files
// under /assets/, no inline script (the service's Content-Security-Policy forbids it).
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
});
