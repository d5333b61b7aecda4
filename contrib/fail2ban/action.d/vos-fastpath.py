# fail2ban Python action: ban in the vos-fastpath XDP blocklist through ONE
# long-lived `vosctl stdin` process, fed one JSON line per ban or unban and
# applying them in micro-batches. fail2ban restores every ban of its database
# at start by calling ban() once per ban; here that is a line written to a pipe,
# so 20,000 restored bans take seconds, not the ~45 minutes of one process per
# ban (action.d/vos-fastpath.conf).
#
#   [kamailio-sip]
#   action = vos-fastpath.py[vosctl=/opt/vos-fastpath/bin/vosctl]
#
# Same contract as vos-fastpath.conf: source "fail2ban-<jail>", the ban's
# remaining time as TTL (-1 = never), unban lifts only that source's entry,
# starting and stopping fail2ban leave the blocklist alone. vosctl's errors
# (a refused address, a full map) are logged by fail2ban.

import json
import math
import subprocess
import threading
import time

from fail2ban.server.actions import ActionBase


class VosFastpathAction(ActionBase):

	def __init__(self, jail, name, vosctl='/opt/vos-fastpath/bin/vosctl', source=None, reason=None):
		super(VosFastpathAction, self).__init__(jail, name)
		self.vosctl = vosctl
		self.source = source or ('fail2ban-' + jail.name)
		self.reason = reason or ('fail2ban ' + jail.name)
		self.proc = None
		self.lock = threading.Lock()

	def _relay(self, proc):
		# vosctl writes logs and refusals on stderr (merged into stdout here).
		for line in proc.stdout:
			line = line.rstrip()
			if not line:
				continue
			if line.startswith('vosctl:') or '"level":"error"' in line or '"level":"warn"' in line:
				self._logSys.error("vosctl: %s", line)
			else:
				self._logSys.debug("vosctl: %s", line)

	def _feed(self):
		if self.proc is None or self.proc.poll() is not None:
			if self.proc is not None:
				self._logSys.error("vosctl stdin exited with %s; starting it again", self.proc.returncode)
			self.proc = subprocess.Popen(
				[self.vosctl, 'stdin', '--source', self.source],
				stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
				universal_newlines=True, bufsize=1)
			threading.Thread(target=self._relay, args=(self.proc,), daemon=True).start()
		return self.proc

	def _send(self, message):
		with self.lock:
			proc = self._feed()
			proc.stdin.write(json.dumps(message) + '\n')
			proc.stdin.flush()

	def start(self):
		with self.lock:
			self._feed()

	def stop(self):
		# EOF lets vosctl apply what it holds and exit.
		with self.lock:
			proc, self.proc = self.proc, None
		if proc is None:
			return
		proc.stdin.close()
		try:
			proc.wait(timeout=60)
		except subprocess.TimeoutExpired:
			self._logSys.error("vosctl stdin did not finish in 60 s; ending it")
			proc.kill()

	def flush(self):
		# fail2ban calls this instead of one unban per ban when the jail stops:
		# the bans stay enforced (each expires by its TTL).
		return True

	def ban(self, aInfo):
		bantime = aInfo['bantime']
		ttl = 0
		if bantime is not None and bantime >= 0:
			# Remaining time: a restored ban ends when fail2ban would end it, not later.
			ttl = int(math.ceil(aInfo['time'] + bantime - time.time()))
			if ttl <= 0:
				return
		self._send({'action': 'block', 'ip': str(aInfo['ip']), 'ttl': ttl, 'source': self.source, 'reason': self.reason})

	def unban(self, aInfo):
		self._send({'action': 'unblock', 'ip': str(aInfo['ip']), 'source': self.source})


Action = VosFastpathAction
