#!/usr/bin/env bash
# The package as a host app gets it: `npm pack` here (prepack builds dist/), the tarball
# holds dist/ and nothing of src/ or tests/; a new app in a temporary directory installs
# it (with react and @types/react, as a React host has them), type-checks a program that
# imports both entry points (@consult-chat/client, @consult-chat/client/react) under
# Node's and a bundler's module resolution, and runs it with Node: it constructs a client
# without connecting, queues a send offline, closes it, and finds the hook.
set -euo pipefail
PKG="$(cd "$(dirname "$0")/.." && pwd)"
APP_SRC="$PKG/tests/pack-app"
TSC="$PKG/node_modules/.bin/tsc"
[ -x "$TSC" ] || { echo "clients/js has no node_modules: npm ci there first" >&2; exit 1; }
work="$(mktemp -d "${TMPDIR:-/tmp}/chat-client-pack.XXXXXX")"
trap 'rm -rf "$work"' EXIT

tgz="$(cd "$PKG" && npm pack --silent --pack-destination "$work" 2>/dev/null | tail -1)"
tgz="$work/$tgz"
[ -f "$tgz" ] || { echo "npm pack made no tarball" >&2; exit 1; }
echo "tarball: $(basename "$tgz") ($(stat -c %s "$tgz") bytes)"
files="$(tar tzf "$tgz" | sort)"
echo "$files" | sed 's/^/  /'
for want in package/package.json package/README.md package/dist/index.js package/dist/index.d.ts \
    package/dist/react.js package/dist/react.d.ts; do
  echo "$files" | grep -qx "$want" || { echo "the tarball lacks $want" >&2; exit 1; }
done
if echo "$files" | grep -Ev '^package/(package\.json|README\.md|dist/[^/]+\.(js|d\.ts))$' | grep -q .; then
  echo "the tarball holds more than package.json, README.md and dist/*.js|*.d.ts" >&2; exit 1
fi

app="$work/app"
mkdir -p "$app"
cp "$APP_SRC"/main.ts "$APP_SRC"/tsconfig.json "$APP_SRC"/tsconfig.bundler.json "$app"/
cat > "$app/package.json" <<'JSON'
{ "name": "pack-check-app", "private": true, "version": "0.0.0", "type": "module" }
JSON
(cd "$app" && npm install --no-audit --no-fund --prefer-offline --loglevel=error --save-exact \
  "$tgz" react@19.3.1 @types/react@19.3.3 >/dev/null)
[ -f "$app/node_modules/socket.io-client/package.json" ] ||
  { echo "installing the tarball did not bring socket.io-client" >&2; exit 1; }

(cd "$app" && "$TSC" -p tsconfig.bundler.json && "$TSC" -p tsconfig.json)
(cd "$app" && timeout 30 node main.js)
