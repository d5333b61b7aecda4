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
# unexpected error's stack still names its functions. better-sqlite3 stays
# outside: it loads its compiled addon from node_modules.
node_modules/.bin/esbuild dist/lib/cli.js --bundle --platform=node --format=cjs --target=node20 \
	--log-level=warning --minify-whitespace --minify-syntax --outfile=dist/vosctl.cjs \
	--alias:string-width=./lib/shims/string-width.cjs --external:better-sqlite3 \
	--define:import.meta.url=__vfp_bundle_url --define:import.meta.dirname=__dirname \
	--define:process.env.NODE_ENV='"production"' \
	--banner:js="var __vfp_bundle_url = require('node:url').pathToFileURL(__filename).href;"
# Caches of the previous bundle are never valid again.
rm -rf dist/.v8cache
