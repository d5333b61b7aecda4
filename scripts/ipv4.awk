# The one address validator of the scripts: reads one address or CIDR per
# line ('#' comments and blank lines skipped), writes one line per good entry:
#     <line-no> <canonical> <prefixlen> <key hex bytes...>
# (exact addresses: the 4 network-order bytes of a blocked_ips key; prefixes:
# the 8 bytes of a struct vfp_lpm_key), and one line per bad entry to stderr:
#     line <n>: '<text>' <reason>
# Variables: blockable=1 adds the never-block rules (min_prefix, own = this
# host's addresses, allow = allowlist entries "a.b.c.d/len", space separated).
# Plain POSIX awk (mawk has no bit operations): addresses are exact doubles.

function pow2(n,   r) { r = 1; while (n-- > 0) r *= 2; return r }

function octet_ok(s) { return s ~ /^(0|[1-9][0-9]?[0-9]?)$/ && s + 0 <= 255 }

# Sets ADDR, LEN, OCT[1..4]; returns "" or the reason the text is no address.
function parse(t,   slash, quad, n, q, i) {
	slash = index(t, "/")
	quad = slash ? substr(t, 1, slash - 1) : t
	LEN = 32
	if (slash) {
		LEN = substr(t, slash + 1)
		if (LEN !~ /^(0|[1-9][0-9]?)$/ || LEN + 0 > 32) return "has a bad prefix length (0 to 32)"
		LEN += 0
	}
	n = split(quad, q, ".")
	if (n != 4 || quad ~ /\.$/) return "is not an IPv4 address or CIDR (dotted quad)"
	ADDR = 0
	for (i = 1; i <= 4; i++) {
		if (q[i] ~ /^0[0-9]/) return "has a leading zero (ambiguous: octal to some tools)"
		if (!octet_ok(q[i])) return "is not an IPv4 address or CIDR (dotted quad, octets 0-255)"
		OCT[i] = q[i] + 0
		ADDR = ADDR * 256 + OCT[i]
	}
	if (ADDR % pow2(32 - LEN) != 0) return "has host bits set; the network is " network(ADDR, LEN)
	return ""
}

function dotted(a) { return int(a / 16777216) "." int(a / 65536) % 256 "." int(a / 256) % 256 "." a % 256 }
function network(a, len) { return dotted(a - a % pow2(32 - len)) "/" len }

function covers(net, len, a, alen) { return alen >= len && a - a % pow2(32 - len) == net }

function never_block(   first, i) {
	first = int(ADDR / 16777216)
	if (LEN < min_prefix) return "is shorter than the minimum prefix /" min_prefix
	if (first == 0) return "is in 0.0.0.0/8 (this network)"
	if (first == 127) return "is loopback"
	if (first >= 224 && first <= 239) return "is multicast"
	if (ADDR == 4294967295) return "is the limited broadcast address"
	for (i = 1; i <= n_own; i++)
		if (covers(ADDR, LEN, own_addr[i], 32)) return "covers this host's address " dotted(own_addr[i])
	for (i = 1; i <= n_allow; i++)
		if (covers(allow_net[i], allow_len[i], ADDR, LEN)) return "is covered by the allowlist entry " dotted(allow_net[i]) "/" allow_len[i]
	return ""
}

function hex_le32(n) { return sprintf("%02x %02x %02x %02x", n % 256, int(n / 256) % 256, int(n / 65536) % 256, int(n / 16777216)) }

BEGIN {
	if (min_prefix == "") min_prefix = 8
	n_own = split(own, own_list, " ")
	for (i = 1; i <= n_own; i++) { if (parse(own_list[i]) == "") own_addr[i] = ADDR; else own_addr[i] = -1 }
	n = split(allow, allow_list, " ")
	n_allow = 0
	for (i = 1; i <= n; i++)
		if (parse(allow_list[i]) == "") { n_allow++; allow_net[n_allow] = ADDR; allow_len[n_allow] = LEN }
}

{
	text = $0
	sub(/#.*/, "", text)
	gsub(/^[ \t\r]+|[ \t\r]+$/, "", text)
	if (text == "") next
	why = parse(text)
	if (why == "" && blockable) why = never_block()
	if (why != "") {
		printf "line %d: '%s' %s\n", NR, text, why > "/dev/stderr"
		bad++
		next
	}
	canon = OCT[1] "." OCT[2] "." OCT[3] "." OCT[4]
	key = sprintf("%02x %02x %02x %02x", OCT[1], OCT[2], OCT[3], OCT[4])
	if (LEN == 32) print NR, canon, 32, key
	else print NR, canon "/" LEN, LEN, hex_le32(LEN) " " key
}

END { exit bad ? 1 : 0 }
