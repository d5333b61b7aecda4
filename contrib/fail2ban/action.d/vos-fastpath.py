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
# starting and stopping fail2ban leave the blocklist alone, and
# `fail2ban-client unban --all` removes every entry of that source. vosctl's
# errors (a refused address, a full map, "paused" while the maps are missing)
# are logged by fail2ban.
#
# fail2ban's action thread never waits on vosctl for long: a line that cannot
# be written within `timeout` seconds (default 30; vosctl stopped reading) ends
# that vosctl (by its pid) and starts a new one, which gets the line; lines the
# old one held but had not applied are lost (logged), and fail2ban's next
# restart restores them. vosctl itself waits, holding what it read, while the
# maps are missing.

import json
import math
import os
import select
import subprocess
import threading
import time

from fail2ban.server.actions import ActionBase


class VosFastpathAction(ActionBase):

	def __init__(self, jail, name, vosctl='/opt/vos-fastpath/bin/vosctl', source=None, reason=None, timeout=30):
		super(VosFastpathAction, self).__init__(jail, name)
		self.vosctl = vosctl
		self.timeout = float(timeout)
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
			# Written with os.write and a deadline (_write), never a blocking file write.
			os.set_blocking(self.proc.stdin.fileno(), False)
			threading.Thread(target=self._relay, args=(self.proc,), daemon=True).start()
		return self.proc

	def _write(self, proc, data):
		# All of data within self.timeout seconds, or False (vosctl exited or stopped reading).
		fd = proc.stdin.fileno()
		deadline = time.monotonic() + self.timeout
		while data:
			left = deadline - time.monotonic()
			if left <= 0 or proc.poll() is not None:
				return False
			_, ready, _ = select.select([], [fd], [], min(left, 1.0))
			if not ready:
				continue
			try:
				data = data[os.write(fd, data):]
			except BlockingIOError:
				continue
			except (BrokenPipeError, OSError):
				return False
		return True

	def _end(self, proc, why):
		self._logSys.error("vosctl stdin (pid %s) %s; ending it and starting another (lines it held but had not applied are lost; a fail2ban restart restores them)", proc.pid, why)
		try:
			proc.kill()
			proc.wait(timeout=10)
		except Exception:
			pass

	def _send(self, message):
		data = (json.dumps(message) + '\n').encode()
		with self.lock:
			for attempt in (1, 2):
				proc = self._feed()
				if self._write(proc, data):
					return
				self._end(proc, 'exited' if proc.poll() is not None else 'took no input for %g s' % self.timeout)
				self.proc = None
			# Logged here, not raised: fail2ban's own report of a failed ban renders every ban tag (database look-ups).
			self._logSys.error("vosctl stdin took no input twice; %s %s not applied", message['action'], message['ip'])

	def start(self):
		with self.lock:
			self._feed()

	def stop(self):
		# EOF lets vosctl apply what it holds and exit.
		with self.lock:
			proc, self.proc = self.proc, None
		self._finish(proc)

	def _finish(self, proc):
		if proc is None:
			return
		try:
			proc.stdin.close()
		except OSError:
			pass
		try:
			proc.wait(timeout=60)
		except subprocess.TimeoutExpired:
			self._logSys.error("vosctl stdin did not finish in 60 s; ending it")
			proc.kill()

	def flush(self):
		# fail2ban 1.0 calls this instead of one unban per ban both when the jail
		# stops and on `fail2ban-client unban --all`. Stopping (the jail's action
		# thread no longer active): the bans stay enforced, each until its TTL.
		# unban --all (the thread still runs): the operator wants them gone, so
		# every entry of this source goes, after what vosctl holds is applied.
		actions = getattr(self._jail, 'actions', None)
		if not getattr(actions, 'active', False):
			return True
		with self.lock:
			proc, self.proc = self.proc, None
			self._finish(proc)
			r = subprocess.run([self.vosctl, 'unblock', '--all', '--source', self.source],
				stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
		if r.returncode != 0:
			raise RuntimeError('vosctl unblock --all --source %s failed: %s' % (self.source, r.stdout.strip()))
		self._logSys.notice("vosctl: %s", r.stdout.strip().splitlines()[-1] if r.stdout.strip() else 'done')
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
