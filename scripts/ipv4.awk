# The one address validator of the scripts, for IPv4 and IPv6 (the file keeps
# its first name): reads one address or CIDR per line ('#' comments and blank
# lines skipped), writes one line per good entry:
#     <line-no> <canonical> <prefixlen> <key hex bytes...>
# (IPv4 exact addresses: the 4 network-order bytes of a blocked_ips key;
# prefixes: the 8 bytes of a struct vfp_lpm_key; IPv6 in RFC 5952 text, the
# 16 bytes of a blocked_ips6 key or the 20 of a struct vfp_lpm_key6; a
# canonical text with a colon is IPv6), and one line per bad entry to stderr:
#     line <n>: '<text>' <reason>
# (the text cut at 64 characters, see quoted(); a never-block refusal adds
# the canonical form after it when that differs: '::ffff:0:0/96' (0.0.0.0/0))
# Variables: blockable=1 adds the never-block rules (min_prefix, min_prefix6,
# own = this host's addresses, allow = allowlist entries "addr/len", space
# separated, either family); removable=1 takes an IPv4-compatible address
# (::a.b.c.d, refused otherwise: RFC 4291 2.5.5.1 deprecates it) as the IPv6
# entry it names. An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4
# address it carries. The rules are lib/address.ts's. Plain POSIX awk (mawk has no bit operations):
# addresses are exact doubles, IPv6 ones eight 16-bit groups.

function pow2(n,   r) { r = 1; while (n-- > 0) r *= 2; return r }

# A prefix length written with a leading zero ("/08", "/048"): refused for both
# families, as the octets are (vosctl refuses the same text).
function leading_zero_prefix(len) { return "has a leading zero in its prefix length (ambiguous: octal to some tools); write /" len + 0 }

# How a refusal names the operator's value (lib/quote.ts's rule): quoted, cut at 64 characters.
function quoted(s) { return length(s) <= 64 ? "'" s "'" : "'" substr(s, 1, 64) "…(" length(s) " chars)'" }

function octet_ok(s) { return s ~ /^(0|[1-9][0-9]?[0-9]?)$/ && s + 0 <= 255 }

# Sets ADDR, LEN, OCT[1..4]; returns "" or the reason the text is no address.
function parse(t,   slash, quad, n, q, i) {
	slash = index(t, "/")
	quad = slash ? substr(t, 1, slash - 1) : t
	LEN = 32
	if (slash) {
		LEN = substr(t, slash + 1)
		if (LEN ~ /^0+[0-9]+$/) return leading_zero_prefix(LEN)
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

# ---- IPv6 (RFC 4291 2.2 text, RFC 5952 canonical form) ----

function hexval(s,   i, n) { n = 0; s = tolower(s); for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return n }

# Sets G6[0..7], LEN (and, for an IPv4-mapped address, ADDR/LEN/OCT as IPv4
# with MAPPED=1); returns "" or the reason the text is no IPv6 address.
function parse6(t,   v4, slash, a, n, parts, i, k, head, tail, nh, nt, h, tl, dbl, inner) {
	MAPPED = 0
	if (t ~ /[][]/) {
		# Name the bare address inside "[addr]" or "[addr]:port" when there is one.
		inner = ""
		if (t ~ /^\[[^][]*\](:[0-9]*)?$/) { inner = t; sub(/^\[/, "", inner); sub(/\](:[0-9]*)?$/, "", inner); gsub(/^[ \t]+|[ \t]+$/, "", inner) }
		if (inner != "" && parse6(inner) == "") inner = "'" inner "'"
		else inner = "the address alone, without brackets or port"
		MAPPED = 0
		return "is bracketed or has a port; give the bare IPv6 address: " inner
	}
	if (index(t, "%")) return "has a zone id (%...): zone-scoped addresses are not blockable"
	slash = index(t, "/")
	a = slash ? substr(t, 1, slash - 1) : t
	LEN = 128
	if (slash) {
		LEN = substr(t, slash + 1)
		if (LEN ~ /^0+[0-9]+$/) return leading_zero_prefix(LEN)
		if (LEN !~ /^(0|[1-9][0-9]?[0-9]?)$/ || LEN + 0 > 128) return "has a bad prefix length (0 to 128)"
		LEN += 0
	}
	if (a !~ /^[0-9A-Fa-f:.]+$/ || a ~ /:::/) return "is not an IPv6 address or CIDR"
	# An embedded IPv4 tail (::ffff:192.0.2.1) becomes two groups.
	if (index(a, ".")) {
		k = a; sub(/.*:/, "", k)
		v4 = LEN
		if (parse(k) != "" || index(k, "/")) return "is not an IPv6 address or CIDR"
		LEN = v4
		a = substr(a, 1, length(a) - length(k)) sprintf("%x:%x", int(ADDR / 65536), ADDR % 65536)
	}
	dbl = index(a, "::")
	if (dbl && index(substr(a, dbl + 2), "::")) return "is not an IPv6 address or CIDR (two ::)"
	if (dbl) {
		head = substr(a, 1, dbl - 1); tail = substr(a, dbl + 2)
		nh = head == "" ? 0 : split(head, h, ":")
		nt = tail == "" ? 0 : split(tail, tl, ":")
		if (nh + nt > 7) return "is not an IPv6 address or CIDR (too many groups)"
		n = 0
		for (i = 1; i <= nh; i++) parts[n++] = h[i]
		for (i = nh + nt; i < 8; i++) parts[n++] = "0"
		for (i = 1; i <= nt; i++) parts[n++] = tl[i]
	} else {
		nh = split(a, h, ":")
		if (nh != 8) return "is not an IPv6 address or CIDR (eight groups or ::)"
		for (i = 0; i < 8; i++) parts[i] = h[i + 1]
	}
	for (i = 0; i < 8; i++) {
		if (parts[i] !~ /^[0-9A-Fa-f]([0-9A-Fa-f]?[0-9A-Fa-f]?[0-9A-Fa-f]?)$/) return "is not an IPv6 address or CIDR (groups of 1-4 hex digits)"
		G6[i] = hexval(parts[i])
	}
	if (G6[0] == 0 && G6[1] == 0 && G6[2] == 0 && G6[3] == 0 && G6[4] == 0 && G6[5] == 65535 && LEN >= 96) {
		MAPPED = 1
		v4 = int(G6[6] / 256) "." G6[6] % 256 "." int(G6[7] / 256) "." G6[7] % 256
		return parse(LEN == 128 ? v4 : v4 "/" (LEN - 96))
	}
	# IPv4-compatible (::a.b.c.d): deprecated, no stack sends from one; :: and ::1 keep their own rules.
	if (!removable && G6[0] == 0 && G6[1] == 0 && G6[2] == 0 && G6[3] == 0 && G6[4] == 0 && G6[5] == 0 && LEN >= 96 && !(LEN == 128 && G6[6] == 0 && G6[7] <= 1)) {
		v4 = int(G6[6] / 256) "." G6[6] % 256 "." int(G6[7] / 256) "." G6[7] % 256
		return "is an IPv4-compatible IPv6 address (::a.b.c.d, deprecated by RFC 4291 2.5.5.1; never a packet's source); give the IPv4 form: " v4 (LEN == 128 ? "" : "/" (LEN - 96))
	}
	for (i = 0; i < 8; i++) {
		if (LEN <= 16 * i) { if (G6[i] != 0) return "has host bits set; the network is " net6_text() }
		else if (LEN < 16 * (i + 1) && G6[i] % pow2(16 * (i + 1) - LEN) != 0) return "has host bits set; the network is " net6_text()
	}
	return ""
}

function net6_text(   i, save) {
	for (i = 0; i < 8; i++) save[i] = G6[i]
	for (i = 0; i < 8; i++) {
		if (LEN <= 16 * i) G6[i] = 0
		else if (LEN < 16 * (i + 1)) G6[i] -= G6[i] % pow2(16 * (i + 1) - LEN)
	}
	t6 = canon6() "/" LEN
	for (i = 0; i < 8; i++) G6[i] = save[i]
	return t6
}

# RFC 5952 4.2: lower case, no leading zeros, the longest run of two or more zero groups (the first on a tie) as ::.
function canon6(   i, j, best, bestlen, out) {
	best = -1; bestlen = 1
	for (i = 0; i < 8; i = j + 1) {
		j = i
		if (G6[i] != 0) continue
		while (j + 1 < 8 && G6[j + 1] == 0) j++
		if (j - i + 1 > bestlen) { best = i; bestlen = j - i + 1 }
	}
	out = ""
	for (i = 0; i < 8; i++) {
		if (i == best) { out = out "::"; i += bestlen - 1; continue }
		out = out ((out == "" || out ~ /::$/) ? "" : ":") sprintf("%x", G6[i])
	}
	return out
}

function g6_string(   i, s) { s = G6[0]; for (i = 1; i < 8; i++) s = s " " G6[i]; return s }

# Does net/len (groups as "g0 ... g7") contain a/alen?
function covers6(net, len, a, alen,   n, m, i, bits) {
	if (alen < len) return 0
	split(net, n, " "); split(a, m, " ")
	for (i = 1; i <= 8; i++) {
		bits = len - 16 * (i - 1)
		if (bits <= 0) return 1
		if (bits >= 16) { if (n[i] != m[i]) return 0; continue }
		return int(n[i] / pow2(16 - bits)) == int(m[i] / pow2(16 - bits))
	}
	return 1
}

function overlaps6(net, len, what) {
	if (covers6(net, len, g6_string(), LEN)) return "is " what
	if (covers6(g6_string(), LEN, net, len)) return "is a prefix covering " what
	return ""
}

function never_block6(   i, why) {
	if (LEN < min_prefix6) return "is shorter than the minimum IPv6 prefix /" min_prefix6
	if ((why = overlaps6("0 0 0 0 0 0 0 0", 128, "the unspecified address (::)")) != "") return why
	if ((why = overlaps6("0 0 0 0 0 0 0 1", 128, "the loopback address (::1)")) != "") return why
	if ((why = overlaps6("65280 0 0 0 0 0 0 0", 8, "multicast (ff00::/8)")) != "") return why
	if ((why = overlaps6("65152 0 0 0 0 0 0 0", 10, "link-local (fe80::/10)")) != "") return why
	# NAT64 (RFC 6052): a prefix inside 64:ff9b::/96 is an IPv4 prefix, held to the IPv4 minimum.
	if (covers6(g6_string(), LEN, "100 65435 0 0 0 0 0 0", 96)) return "covers the NAT64 prefix 64:ff9b::/96: every IPv4 host reached through NAT64"
	if (covers6("100 65435 0 0 0 0 0 0", 96, g6_string(), LEN) && LEN - 96 < min_prefix)
		return "is " int(G6[6] / 256) "." G6[6] % 256 "." int(G6[7] / 256) "." G6[7] % 256 "/" (LEN - 96) " through NAT64, shorter than the minimum prefix /" min_prefix
	for (i = 1; i <= n_own6; i++)
		if (covers6(g6_string(), LEN, own6[i], 128)) return "covers this host's address " own6_text[i]
	for (i = 1; i <= n_allow6; i++)
		if (covers6(allow6_net[i], allow6_len[i], g6_string(), LEN)) return "is covered by the allowlist entry " allow6_text[i]
	return ""
}

function key6(   i, k) {
	k = sprintf("%02x %02x", int(G6[0] / 256), G6[0] % 256)
	for (i = 1; i < 8; i++) k = k sprintf(" %02x %02x", int(G6[i] / 256), G6[i] % 256)
	return k
}

function hex_le32(n) { return sprintf("%02x %02x %02x %02x", n % 256, int(n / 256) % 256, int(n / 65536) % 256, int(n / 16777216)) }

BEGIN {
	if (min_prefix == "") min_prefix = 8
	if (min_prefix6 == "") min_prefix6 = 32
	n = split(own, own_list, " ")
	n_own = n_own6 = 0
	for (i = 1; i <= n; i++) {
		if (index(own_list[i], ":")) { if (parse6(own_list[i]) == "" && !MAPPED) { own6[++n_own6] = g6_string(); own6_text[n_own6] = canon6() } }
		else if (parse(own_list[i]) == "") own_addr[++n_own] = ADDR
	}
	n = split(allow, allow_list, " ")
	n_allow = n_allow6 = 0
	for (i = 1; i <= n; i++) {
		if (index(allow_list[i], ":")) {
			if (parse6(allow_list[i]) == "" && !MAPPED) { n_allow6++; allow6_net[n_allow6] = g6_string(); allow6_len[n_allow6] = LEN; allow6_text[n_allow6] = canon6() "/" LEN }
		} else if (parse(allow_list[i]) == "") { n_allow++; allow_net[n_allow] = ADDR; allow_len[n_allow] = LEN }
	}
}

{
	text = $0
	sub(/#.*/, "", text)
	gsub(/^[ \t\r]+|[ \t\r]+$/, "", text)
	if (text == "") next
	v6 = index(text, ":") || index(text, "[")
	if (v6) {
		why = parse6(text)
		if (MAPPED) { v6 = 0; if (why != "") why = "(IPv4-mapped) " why }
	} else why = parse(text)
	name = quoted(text)
	if (why == "" && blockable) {
		why = v6 ? never_block6() : never_block()
		# A refused entry is named as typed, its canonical form after it when that differs (lib/address.ts's namedTarget).
		canon = v6 ? canon6() (LEN == 128 ? "" : "/" LEN) : OCT[1] "." OCT[2] "." OCT[3] "." OCT[4] (LEN == 32 ? "" : "/" LEN)
		if (canon != text) name = name " (" canon ")"
	}
	if (why != "") {
		printf "line %d: %s %s\n", NR, name, why > "/dev/stderr"
		bad++
		next
	}
	if (v6) {
		if (LEN == 128) print NR, canon6(), 128, key6()
		else print NR, canon6() "/" LEN, LEN, hex_le32(LEN) " " key6()
		next
	}
	canon = OCT[1] "." OCT[2] "." OCT[3] "." OCT[4]
	key = sprintf("%02x %02x %02x %02x", OCT[1], OCT[2], OCT[3], OCT[4])
	if (LEN == 32) print NR, canon, 32, key
	else print NR, canon "/" LEN, LEN, hex_le32(LEN) " " key
}

END { exit bad ? 1 : 0 }
