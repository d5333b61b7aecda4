/*
 * string-width for yargs and cliui inside dist/vosctl.cjs (scripts/bundle.sh).
 * The real module builds an Intl.Segmenter and Unicode-property regexes when
 * it loads: about 30 ms of every vosctl run, because yargs renders a
 * command's help on each run. Printable ASCII, which is all of vosctl's help,
 * is one column a character; anything else goes to the real module, loaded
 * on first need.
 */
'use strict';

let real;
module.exports = function stringWidth(text, options) {
  if (typeof text === 'string' && /^[\x20-\x7e]*$/.test(text)) return text.length;
  real ??= require('../../node_modules/string-width/index.js').default;
  return real(text, options);
};
