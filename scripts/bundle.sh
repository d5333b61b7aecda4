#!/usr/bin/env bash
# Bundle the compiled lib/ (dist/lib) into dist/vosctl.cjs, the one file
# bin/vosctl runs (through V8's code cache, see lib/boot.ts).
set -euo pipefail
usage() { echo "usage: ${0##*/}   (run from the checkout, after tsc)" >&2; exit 2; }
(($# == 0)) || usage
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f dist/lib/cli.js ] || { echo "bundle.sh: dist/lib/cli.js is missing: run tsc first" >&2; exit 1; }

# CommonJS, because only vm.Script (not an ES module) takes a code cache on
# Node 20; import.meta is given its CommonJS equivalents. string-width is
# swapped for lib/shims/string-width.cjs (why: see there). NODE_ENV is fixed
# to production only so that winston's debug helper (@dabh/diagnostics) does
# not load its development build, ~5 ms of colour tables per run; nothing
# else in the bundle reads NODE_ENV. Whitespace and syntax are minified
# (a third less source to read on every run, ~8 ms); names are kept, so an
# unexpected error's stack still names its functions. better-sqlite3's
# JavaScript is bundled too; its compiled addon is loaded by path (lib/state.ts
# gives nativeBinding), so `bindings`, its fallback lookup, stays out.
# The first line names the commands, so lib/boot.ts picks a command's code
# cache without mistaking an option's value for a command.
commands=$(node -e "import('./dist/lib/commands/index.js').then((m) => console.log(m.commands.map((c) => String(c.command).split(' ')[0]).concat('completion').join(' ')))")
node_modules/.bin/esbuild dist/lib/cli.js --bundle --platform=node --format=cjs --target=node20 \
	--log-level=warning --minify-whitespace --minify-syntax --outfile=dist/vosctl.cjs \
	--alias:string-width=./lib/shims/string-width.cjs --external:bindings \
	--define:import.meta.url=__vfp_bundle_url --define:import.meta.dirname=__dirname \
	--define:process.env.NODE_ENV='"production"' \
	--banner:js="// vfp-commands: ${commands}
var __vfp_bundle_url = require('node:url').pathToFileURL(__filename).href;"
# Node 20 cannot run a dynamic import() from the code-cached vm.Script
# (lib/boot.ts): esbuild inlines those of our own modules, but keeps those of
# node: builtins or externals. Refuse the bundle rather than ship one that
# fails on its second run.
if grep -nE '(^|[^A-Za-z0-9_$.])import\(' dist/vosctl.cjs >&2; then
	echo "bundle.sh: dist/vosctl.cjs holds a dynamic import() (above); import it statically in lib/" >&2
	rm -f dist/vosctl.cjs
	exit 1
fi
# better-sqlite3's addon, named for the Node ABI and architecture it was
# built for; the package ships it (no compiler on a production host).
addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
[ -f "$addon" ] || { echo "bundle.sh: $addon is missing: npm ci (it builds better-sqlite3)" >&2; exit 1; }
mkdir -p build
cp "$addon" "build/$(node -p '"better_sqlite3-node" + process.versions.modules + "-" + process.platform + "-" + process.arch + ".node"')"
# Caches of the previous bundle are never valid again.
rm -rf dist/.v8cache
