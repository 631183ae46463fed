# Shared set-up for scripts/dev and scripts/test. Sourced, not run.
# Each step is idempotent and cheap when already done, so a second run is fast.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
SUPABASE="$ROOT/node_modules/.bin/supabase"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }

_apt_updated=""
apt_install() {
  is_root && have apt-get || die "missing $*: install them (Debian/Ubuntu packages: $*)"
  if [ -z "$_apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
    _apt_updated=1
  fi
  log "installing $* (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Python virtual environment with the locked dependencies (requirements-dev.lock, every
# file checked against its hash); reinstalled when pyproject.toml or the lock changes.
ensure_python() {
  local stamp="$VENV/.pyproject.sha" want
  want="$(cat "$ROOT/pyproject.toml" "$ROOT/requirements-dev.lock" | sha256sum | cut -d' ' -f1)"
  if [ -x "$PY" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  local base=python3
  have python3.11 && base=python3.11
  have "$base" || die "python3 (3.11 or newer) is needed"
  log "python environment ($VENV)"
  [ -x "$PY" ] || "$base" -m venv "$VENV" || {
    apt_install python3-venv && "$base" -m venv "$VENV"; }
  "$PY" -m pip install -q --upgrade pip >/dev/null
  "$PY" -m pip install -q --require-hashes --no-deps -r "$ROOT/requirements-dev.lock"
  "$PY" -m pip install -q --no-deps -e "$ROOT"
  echo "$want" > "$stamp"
}

# The Supabase CLI (and the Socket.IO JS client) pinned in package.json.
ensure_node_tools() {
  local stamp="$ROOT/node_modules/.package.sha" want
  want="$(sha256sum "$ROOT/package.json" | cut -d' ' -f1)"
  if [ -x "$SUPABASE" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  have npm || apt_install nodejs npm
  log "node tools (supabase CLI, socket.io-client)"
  (cd "$ROOT" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  [ -x "$SUPABASE" ] || die "the supabase CLI did not install (npm install supabase)"
  echo "$want" > "$stamp"
}

# URL helpers (python, no dependencies).
url_with_db() { # URL DBNAME -> same server, other database
  python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$1" "$2"
}
url_db_name() {
  python3 -c 'import sys,urllib.parse as u; print(u.urlsplit(sys.argv[1]).path.lstrip("/") or "postgres")' "$1"
}
url_for_cli() { # the CLI needs sslmode=disable for a local server without TLS
  case "$1" in
    *sslmode=*) echo "$1" ;;
    *\?*) echo "$1&sslmode=disable" ;;
    *) echo "$1?sslmode=disable" ;;
  esac
}

pg_reachable() { psql "$(url_with_db "$1" postgres)" -Atqc 'select 1' >/dev/null 2>&1; }

# A PostgreSQL to use: DATABASE_URL when reachable; else this machine's cluster,
# started; else, as root on Debian/Ubuntu, installed; else say what to set.
ensure_postgres() {
  local url="$1"
  have psql || apt_install postgresql-client
  pg_reachable "$url" && return
  if have pg_ctlcluster && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    local ver; ver="$(ls /etc/postgresql | sort -V | tail -1)"
    log "starting the local PostgreSQL $ver cluster"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || true
    for _ in $(seq 1 30); do pg_reachable "$url" && return; sleep 1; done
  elif is_root && have apt-get; then
    apt_install postgresql
    local ver; ver="$(ls /etc/postgresql | sort -V | tail -1)"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || true
    # Trust local connections, as the development default expects.
    su postgres -c "psql -qc \"alter role postgres password 'postgres'\"" >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do pg_reachable "$url" && return; sleep 1; done
  fi
  die "no PostgreSQL reachable at $url. Start one, or set DATABASE_URL to a reachable server."
}

ensure_database() { # URL: create the database when missing
  local url="$1" name
  name="$(url_db_name "$url")"
  if ! psql "$(url_with_db "$url" postgres)" -Atqc "select 1 from pg_database where datname = '$name'" | grep -q 1; then
    log "creating database $name"
    psql "$(url_with_db "$url" postgres)" -qc "create database \"$name\"" >/dev/null
  fi
}

# The local stand-in for hosted Supabase, then the migrations with the real CLI.
apply_platform() {
  local url="$1" f
  for f in "$ROOT"/sql/platform/*.sql; do
    psql "$url" -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null 2>"$ROOT/.platform.err" ||
      { cat "$ROOT/.platform.err" >&2; die "platform stand-in failed: $f"; }
  done
  rm -f "$ROOT/.platform.err"
}

# The pgTAP helpers (schema tests): test databases only, after the migrations.
apply_test_helpers() {
  local url="$1" f
  for f in "$ROOT"/sql/test/*.sql; do
    psql "$url" -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null || die "test helpers failed: $f"
  done
}

migrate() {
  local url="$1" out
  out="$("$SUPABASE" migration up --db-url "$(url_for_cli "$url")" 2>&1)" ||
    { echo "$out" >&2; die "supabase migration up failed"; }
  echo "$out" | grep -i 'applying' >&2 || true
}

seed() {
  psql "$1" -q -v ON_ERROR_STOP=1 -f "$ROOT/supabase/seed.sql" >/dev/null
}

# Everything a database needs: created, platform, migrations.
prepare_database() {
  ensure_postgres "$1"
  ensure_database "$1"
  apply_platform "$1"
  migrate "$1"
}

# Redis for the multi-relay tests: the machine's, started if it is down, else installed.
ensure_redis() {
  local url="${1:-redis://127.0.0.1:6379}"
  have redis-cli || apt_install redis-tools
  redis-cli -u "$url" ping >/dev/null 2>&1 && return
  have redis-server || apt_install redis-server
  log "starting redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp >/dev/null
  for _ in $(seq 1 20); do redis-cli -u "$url" ping >/dev/null 2>&1 && return; sleep 0.5; done
  die "no Redis reachable at $url"
}

# The typed client's packages (clients/js/package-lock.json, npm ci), reinstalled when the
# lock changes, and the client built into clients/js/dist (tsc) when its sources changed:
# the console depends on it as an installed package (file:../clients/js) and reads dist/.
ensure_client() {
  local dir="$ROOT/clients/js" stamp want
  stamp="$dir/node_modules/.lock.sha"
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if ! [ -d "$dir/node_modules" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    have npm || apt_install nodejs npm
    log "client packages (clients/js/, npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
      die "npm ci in clients/js/ failed"
    echo "$want" > "$stamp"
  fi
  build_client || die "the typed client did not build (cd clients/js && npm run build)"
}

# clients/js/dist from clients/js/src; skipped when nothing changed.
client_sources_sha() {
  (cd "$ROOT/clients/js" && cat package.json package-lock.json tsconfig.json \
    $(find src -type f | sort) | sha256sum | cut -d' ' -f1)
}
# (The stamp is kept out of dist/, which is what the package ships.)
build_client() {
  local stamp="$ROOT/clients/js/node_modules/.dist.sha" want
  want="$(client_sources_sha)"
  if [ -f "$ROOT/clients/js/dist/index.js" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  log "building the typed client (clients/js/dist)"
  (cd "$ROOT/clients/js" && npm run --silent build) || return 1
  echo "$want" > "$stamp"
}

# The console's packages (web/package-lock.json, npm ci); reinstalled when the lock changes.
# The typed client first: web/ installs it from clients/js.
ensure_web() {
  ensure_client
  local stamp="$ROOT/web/node_modules/.lock.sha" want
  want="$(sha256sum "$ROOT/web/package-lock.json" | cut -d' ' -f1)"
  if [ -d "$ROOT/web/node_modules" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  have npm || apt_install nodejs npm
  log "console packages (web/, npm ci)"
  (cd "$ROOT/web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    die "npm ci in web/ failed"
  echo "$want" > "$stamp"
}

# The console built into web/dist (type-checked first), after the typed client it
# imports; skipped when neither changed.
build_web() {
  build_client || return 1
  local stamp="$ROOT/web/dist/.sources.sha" want
  want="$( { (cd "$ROOT/web" && cat package-lock.json index.html vite.config.ts tsconfig.json \
    $(find src -type f | sort)); client_sources_sha; } | sha256sum | cut -d' ' -f1)"
  if [ -f "$ROOT/web/dist/index.html" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  log "building the console (web/dist)"
  (cd "$ROOT/web" && npm run --silent build >/dev/null) || return 1
  echo "$want" > "$stamp"
}

# Debian's Chromium for the browser tests (driven by playwright-core, no browser download).
ensure_chromium() {
  [ -x /usr/bin/chromium ] || apt_install chromium
}

# The Node side of the suite (load generator, baseline and echo servers), from the lock.
ensure_bench_node() {
  local stamp="$ROOT/bench/node_modules/.lock.sha" want
  want="$(sha256sum "$ROOT/bench/package-lock.json" | cut -d' ' -f1)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return
  have npm || apt_install nodejs npm
  log "bench node modules (npm ci in bench/)"
  (cd "$ROOT/bench" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" > "$stamp"
}
