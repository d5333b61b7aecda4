/**
 * A private CrowdSec local API for a test: Debian's crowdsec with its own
 * config and data folders under the lab's temp folder, the LAPI on a free
 * loopback port, no agent (-no-cs: no acquisition, parsers or scenarios) and no
 * central API. Stopped by its pid through the lab.
 */
import { execa } from 'execa';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from './lab.js';
import { freePort, waitFor } from './wait.js';

export interface CrowdsecLapi {
  url: string;
  config: string;
  cscli: (...args: string[]) => Promise<string>;
}

export async function startLapi(lab: Lab): Promise<CrowdsecLapi> {
  const dir = join(lab.tmp, 'crowdsec');
  const etc = join(dir, 'etc');
  const data = join(dir, 'data');
  mkdirSync(etc, { recursive: true });
  mkdirSync(data, { recursive: true });
  for (const f of ['profiles.yaml', 'simulation.yaml']) copyFileSync(join('/etc/crowdsec', f), join(etc, f));
  writeFileSync(join(etc, 'local_api_credentials.yaml'), '');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = join(etc, 'config.yaml');
  writeFileSync(
    config,
    `common:
  daemonize: false
  log_media: stdout
  log_level: info
  working_dir: ${dir}
config_paths:
  config_dir: ${etc}/
  data_dir: ${data}/
  simulation_path: ${etc}/simulation.yaml
  hub_dir: ${dir}/hub/
  index_path: ${dir}/hub/.index.json
  notification_dir: ${etc}/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: ${etc}/acquis.yaml
cscli:
  output: human
db_config:
  log_level: info
  type: sqlite
  db_path: ${data}/crowdsec.db
  use_wal: true
api:
  client:
    credentials_path: ${etc}/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:${port}
    profiles_path: ${etc}/profiles.yaml
    trusted_ips:
      - 127.0.0.1
prometheus:
  enabled: false
`,
  );
  const cscli = async (...args: string[]) => (await execa('cscli', ['-c', config, ...args], { cwd: dir })).stdout;
  // cscli decisions add talks to the LAPI as a machine: register one, credentials into our folder.
  await cscli('machines', 'add', '-a', '-f', join(etc, 'local_api_credentials.yaml'));
  const lapi = lab.spawn('crowdsec', ['-c', config, '-no-cs'], { cwd: dir, all: true });
  await waitFor('the CrowdSec local API', async () => {
    if (lapi.exitCode !== null) throw new Error(`crowdsec exited: ${(await lapi).all}`);
    return (await execa('cscli', ['-c', config, 'decisions', 'list', '-o', 'raw'], { cwd: dir, reject: false })).exitCode === 0 && readFileSync(join(etc, 'local_api_credentials.yaml'), 'utf8').includes('password');
  });
  return { url, config, cscli };
}
