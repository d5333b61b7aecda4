/** Every vosctl command, in the order --help lists them. */
import type { CommandModule } from 'yargs';
import { attach, detach } from './attach.js';
import { block } from './block.js';
import { consume } from './consume.js';
import { driftCheck, exporter } from './exporter.js';
import { doctor } from './doctor.js';
import { installUnits } from './install-units.js';
import { crowdsec } from './crowdsec.js';
import { list } from './list.js';
import { loadFile } from './load-file.js';
import { gc, reconcileCmd, status } from './maintenance.js';
import { allow, disallow, optionsAllow, optionsDisallow } from './marks.js';
import { stats } from './stats.js';
import { stdin } from './stdin.js';
import { unblock } from './unblock.js';

export const commands: CommandModule<object, never>[] = [
  attach,
  detach,
  block,
  unblock,
  loadFile,
  consume,
  crowdsec,
  stdin,
  list,
  allow,
  disallow,
  optionsAllow,
  optionsDisallow,
  stats,
  exporter,
  driftCheck,
  status,
  gc,
  reconcileCmd,
  doctor,
  installUnits,
] as unknown as CommandModule<object, never>[];
