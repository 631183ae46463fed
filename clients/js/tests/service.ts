// The real chat service for the JavaScript tests (this package's, and the console's in
// web/tests): a fresh database (a copy of the migrated template, seeded with
// supabase/seed.sql), the Python service as a child process on a free port, and HS256
// tokens shaped like Supabase Auth's. Stop and start it again to test a relay restart.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (this file is clients/js/tests/service.ts) and the console in it. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const WEB = join(ROOT, 'web');
export const SECRET = 'web-tests-secret-0123456789abcdef-0123456789';
export const DEMO = {
  session: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  client: '11111111-1111-4111-8111-111111111111',
  reader: '22222222-2222-4222-8222-222222222222',
  admin: '33333333-3333-4333-8333-333333333333',
  outsider: '44444444-4444-4444-8444-444444444444',
} as const;
const DEFAULT_TEMPLATE = 'postgresql://postgres@127.0.0.1:5432/chat_web_template';

function withDb(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

function psql(url: string, ...args: string[]): string {
  return execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qAt', ...args], { encoding: 'utf8' });
}

/** The migrated template database (scripts/test passes its own; else prepared here). */
export function ensureTemplate(): string {
  const given = process.env.CHAT_TEST_TEMPLATE_URL;
  if (given) return given;
  execFileSync(join(ROOT, 'scripts', 'db-setup'), [DEFAULT_TEMPLATE], { stdio: 'inherit' });
  return DEFAULT_TEMPLATE;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

export function signToken(opts: { user: string; role?: string; name?: string; expiresIn?: number }): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(
    JSON.stringify({
      aud: 'authenticated',
      sub: opts.user,
      role: 'authenticated',
      iat: now,
      exp: now + (opts.expiresIn ?? 3600),
      email: `${opts.role ?? 'client'}-${opts.user.slice(0, 8)}@example.com`,
      session_id: randomUUID(),
      app_metadata: { provider: 'email', role: opts.role ?? 'client' },
      user_metadata: opts.name ? { full_name: opts.name } : {},
    }),
  );
  const sig = createHmac('sha256', SECRET).update(`${header}.${payload}`).digest();
  return `${header}.${payload}.${b64url(sig)}`;
}

export interface ServiceOptions {
  template: string;
  env?: Record<string, string>;
}

export class Service {
  readonly dbUrl: string;
  readonly dataDir: string;
  port = 0;
  private proc?: ChildProcess;
  private log = '';

  private constructor(
    private readonly template: string,
    private readonly extraEnv: Record<string, string>,
  ) {
    this.dbUrl = withDb(template, `chat_web_${process.pid}_${randomUUID().slice(0, 8)}`);
    this.dataDir = mkdtempSync(join(tmpdir(), 'chat-web-'));
  }

  static async start(opts: ServiceOptions): Promise<Service> {
    const svc = new Service(opts.template, opts.env ?? {});
    const name = new URL(svc.dbUrl).pathname.slice(1);
    const templateName = new URL(opts.template).pathname.slice(1);
    psql(withDb(opts.template, 'postgres'), '-c', `create database "${name}" template "${templateName}"`);
    psql(svc.dbUrl, '-f', join(ROOT, 'supabase', 'seed.sql'));
    svc.port = await freePort();
    await svc.boot();
    return svc;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  token(user: string, role = 'client', name?: string, expiresIn?: number): string {
    return signToken({ user, role, name, expiresIn });
  }

  sql(statement: string): string {
    return psql(this.dbUrl, '-c', statement);
  }

  async boot(): Promise<void> {
    this.log = '';
    const proc = spawn(join(ROOT, '.venv', 'bin', 'python'), ['-m', 'workers', 'relay'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        DATABASE_URL: this.dbUrl,
        JWT_SECRET: SECRET,
        PORT: String(this.port),
        HOST: '127.0.0.1',
        DATA_DIR: this.dataDir,
        LOG_LEVEL: 'WARNING',
        ...this.extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout?.on('data', (d) => (this.log += d));
    proc.stderr?.on('data', (d) => (this.log += d));
    this.proc = proc;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`service exited: ${this.log}`);
      try {
        const r = await fetch(`${this.url}/health`);
        if (r.status === 200) return;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(`service did not become healthy: ${this.log}`);
  }

  /** Stop the process (SIGTERM: graceful, sockets closed) or kill it (SIGKILL). */
  async halt(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    this.proc = undefined;
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.halt(signal);
    await this.boot();
  }

  get output(): string {
    return this.log;
  }

  async stop(): Promise<void> {
    await this.halt();
    const name = new URL(this.dbUrl).pathname.slice(1);
    try {
      psql(withDb(this.template, 'postgres'), '-c', `drop database if exists "${name}" with (force)`);
    } finally {
      rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}
