import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The console is served by the chat service at / (workers/api/console.py): hashed files
// under /assets/, no inline script (the service's Content-Security-Policy forbids it).
// The typed client is a linked package (@consult-chat/client, file:../clients/js): its
// imports of React and socket.io-client resolve to the console's one copy.
export default defineConfig({
  plugins: [react()],
  base: '/',
  resolve: { dedupe: ['react', 'react-dom', 'socket.io-client'] },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
});
