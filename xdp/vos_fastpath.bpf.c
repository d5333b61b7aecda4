// SPDX-License-Identifier: GPL-2.0
/*
 * vos-fastpath: drop bad SIP traffic at the NIC.
 *
 * Policy, in order, for every IPv4 and IPv6 frame (each family has its own
 * maps, with the same values):
 *   allowlisted source            -> pass (nothing below applies)
 *   source in the blocklist       -> drop
 *   UDP to a SIP port:
 *     payload past what the checks read          -> drop (unjudged)
 *     OPTIONS from a source not in options_allow -> drop (stealth)
 *     malformed REGISTER                         -> drop
 *   AF_XDP socket on this queue   -> redirect, else pass
 * Shadow mode counts every would-drop and drops nothing.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <xdp/xdp_helpers.h>

#include "vfp_maps.h"
#include "vfp_blocked_ips.bpf.h"

/*
 * The SIP checks skip a preamble before the start line of fewer than
 * SIP_MAX_LEN bytes (a longer one passes unjudged, see run_end) and judge a
 * REGISTER of up to SIP_MAX_LEN bytes in full. MAX_HEADER_LINES header lines
 * always fit the REGISTER walk (WALK_STEPS below); shorter lines let more fit.
 */
#define SIP_MAX_LEN       4096
#define SIP_MAX_WORDS     (SIP_MAX_LEN / 8)
#define MAX_HEADER_LINES  128
/*
 * A first fragment to a SIP port must show this many bytes past its preamble,
 * or it is dropped as tiny_fragment: enough for the longest method we compare
 * and its SP ("REGISTER ", 9 bytes) with room to spare. Real senders fragment
 * at the path MTU (576 bytes or more in practice), far above it; a scanner
 * that splits "OPTIONS " across fragments (RFC 1858's tiny-fragment trick,
 * applied to SIP) falls below it.
 */
#define SIP_MIN_FIRST_FRAGMENT 16
/*
 * How far past the start of the UDP payload the SIP checks read: a preamble
 * (under SIP_MAX_LEN bytes), a REGISTER (up to SIP_MAX_LEN) and the word read
 * ahead of a position near its end (16 bytes).
 */
#define SIP_REACH         (2 * SIP_MAX_LEN + 16)
/*
 * Masks frame offsets for the verifier. A masked offset is the real one only
 * below the mask: sip_judge judges no payload that starts later than
 * FRAME_OFF_MASK + 1 - SIP_REACH (8 KiB of L2-L4 headers; IPv4's are at most
 * 90 bytes), so no read wraps to the frame's headers. A datagram to a SIP
 * port whose payload starts later (only IPv6 extension headers push it so
 * far) cannot be judged and is dropped as unjudged.
 */
#define FRAME_OFF_MASK    0x3fff
#define SIP_MAX_PAYLOAD_OFF (FRAME_OFF_MASK + 1 - SIP_REACH)
#define MAX_VLAN_TAGS     2
#define IP_MF             0x2000
#define IP_OFFSET         0x1fff
/*
 * The IPv6 extension-header walk (ext_walk) reads headers that start at frame
 * offsets up to EXT_MAX_OFF: the most a direct packet read reaches (the
 * verifier's 64 KiB) less the 20 bytes of a TCP header read after the walk.
 * Every header is 8 bytes or more, so EXT_WALK_STEPS headers always end past
 * that: no chain outruns the walk. It ends at the upper layer, at the frame's
 * end (cut short), at an extension header it does not walk, or (frames over
 * 64 KiB only) past EXT_MAX_OFF; all but the first pass, counted
 * unparsed_headers.
 */
#define EXT_MAX_OFF       0xffe0
#define EXT_WALK_STEPS    ((EXT_MAX_OFF + 32) / 8)
#define IP6_MF            0x0001
#define IP6_OFFSET        0xfff8

/* Capacities below are defaults only: scripts/load.sh creates the pinned maps
 * with the operator's capacity and hands them to the loader, which reuses them. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VFP_DEFAULT_PREFIX_CAPACITY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vfp_lpm_key);
	__type(value, struct vfp_block);
} blocked_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VFP_ALLOW_CAPACITY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vfp_lpm_key);
	__type(value, struct vfp_mark);
} allow_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VFP_ALLOW_CAPACITY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vfp_lpm_key);
	__type(value, struct vfp_mark);
} options_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VFP_DEFAULT_BLOCK_CAPACITY);
	__type(key, struct vfp_in6);
	__type(value, struct vfp_block);
} blocked_ips6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VFP_DEFAULT_PREFIX_CAPACITY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vfp_lpm_key6);
	__type(value, struct vfp_block);
} blocked_prefixes6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VFP_ALLOW_CAPACITY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vfp_lpm_key6);
	__type(value, struct vfp_mark);
} allow_ips6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VFP_ALLOW_CAPACITY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vfp_lpm_key6);
	__type(value, struct vfp_mark);
} options_allow6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vfp_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VFP_STAT_ENTRIES);
	__type(key, __u32);
	__type(value, struct vfp_counter);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, VFP_XSK_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct hdr_cursor {
	void *pos;
};

struct vlan_tag {
	__be16 tci;
	__be16 next_proto;
};

/* Little-endian packing of ASCII, to compare up to 8 payload bytes in one load. */
#define C8(a, b, c, d, e, f, g, h)                                              \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 |  \
	 (__u64)(e) << 32 | (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)
#define LOW_BYTES(n) ((n) >= 8 ? ~0ULL : ((1ULL << ((n) * 8)) - 1))
#define LOWER_CASE 0x2020202020202020ULL

static __always_inline int count(__u32 stat, __u32 bytes, int action)
{
	struct vfp_counter *c = bpf_map_lookup_elem(&stats, &stat);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
	return action;
}

static __always_inline int parse_ethhdr(struct hdr_cursor *cur, void *data_end)
{
	struct ethhdr *eth = cur->pos;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
	cur->pos = eth + 1;
	proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_tag *tag = cur->pos;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(tag + 1) > data_end)
			return -1;
		proto = tag->next_proto;
		cur->pos = tag + 1;
	}
	return proto;
}

static __always_inline struct iphdr *parse_iphdr(struct hdr_cursor *cur, void *data_end)
{
	struct iphdr *iph = cur->pos;
	__u32 hdrsize;

	if ((void *)(iph + 1) > data_end)
		return NULL;
	hdrsize = iph->ihl * 4;
	if (hdrsize < sizeof(*iph) || cur->pos + hdrsize > data_end)
		return NULL;
	cur->pos += hdrsize;
	return iph;
}

/* Lowest byte flagged by a SWAR match mask (0x80 per matching byte, little-endian). */
static __always_inline __u32 first_flagged_byte(__u64 m)
{
	__u64 below = ((m & -m) >> 7) - 1;

	return ((below & 0x0101010101010101ULL) * 0x0101010101010101ULL) >> 56;
}

/* 0x80 in each byte of x equal to b; only the lowest flag is exact, which is all we use. */
static __always_inline __u64 bytes_equal(__u64 x, __u8 b)
{
	__u64 y = x ^ (0x0101010101010101ULL * b);

	return (y - 0x0101010101010101ULL) & ~y & 0x8080808080808080ULL;
}

/*
 * The 8 frame bytes at offset pos, little-endian; bytes past the frame's end
 * read as 0. The frame is read in place: a program without xdp.frags always
 * gets a linear frame, so a copy into a scratch map only cost time (about
 * 37 ns of a 370 ns check of a 500-byte REGISTER).
 */
static __always_inline __u64 frame_load8(__u8 *data, void *data_end, __u32 pos, __u32 flen)
{
	__u8 *p = data + (pos & FRAME_OFF_MASK);
	__u32 last = flen - 8;

	if ((void *)(p + 8) <= data_end)
		return *(__u64 *)p;
	/* Within 8 bytes of the end: the frame's last 8 bytes, shifted down. */
	if (pos >= flen || flen < 8)
		return 0;
	p = data + (last & FRAME_OFF_MASK);
	if ((void *)(p + 8) > data_end)
		return 0;
	return *(__u64 *)p >> ((pos - last) * 8);
}

/* 0x80 in each byte of x that is LF, SP or CR (only the lowest flag is exact). */
static __always_inline __u64 uri_ends(__u64 x)
{
	return bytes_equal(x, '\n') | bytes_equal(x, ' ') | bytes_equal(x, '\r');
}

#define HDR_VIA    (1u << 0)
#define HDR_FROM   (1u << 1)
#define HDR_TO     (1u << 2)
#define HDR_CALLID (1u << 3)
#define HDR_CSEQ   (1u << 4)
#define HDR_ALL    (HDR_VIA | HDR_FROM | HDR_TO | HDR_CALLID | HDR_CSEQ)

/* 0x80 in every byte of x equal to b, exactly (no borrow between bytes). */
static __always_inline __u64 bytes_equal_all(__u64 x, __u8 b)
{
	__u64 y = x ^ (0x0101010101010101ULL * b);

	return ~(((y & 0x7f7f7f7f7f7f7f7fULL) + 0x7f7f7f7f7f7f7f7fULL) | y | 0x7f7f7f7f7f7f7f7fULL);
}

/* 0x80 in every byte of x that is SP or HTAB (RFC 3261 25.1 WSP). */
static __always_inline __u64 blanks(__u64 x)
{
	return bytes_equal_all(x, ' ') | bytes_equal_all(x, '\t');
}

/*
 * 0x80 in every byte of x that a server skips before a start line: CR and LF
 * (RFC 3261 7.5; OpenSIPS skips these), and NUL, HTAB and SP too (Kamailio's
 * parse_msg skips all five). The union, so we see the start line wherever
 * either server does.
 */
static __always_inline __u64 preamble_bytes(__u64 x)
{
	return bytes_equal_all(x, '\r') | bytes_equal_all(x, '\n') | bytes_equal_all(x, 0) | blanks(x);
}

/*
 * Frame offset of the first byte in [pos, end) that is not SP or HTAB (not a
 * preamble byte either, when preamble is 1), end when there is none, or -1
 * when the run is SIP_MAX_LEN bytes or longer. Serves both long runs the
 * checks meet: the preamble before a start line and the blanks of an HCOLON
 * (RFC 3261 25.1: *( SP / HTAB ) ":"). One global function with one loop:
 * the verifier walks the loop once for both, and not again at every step of
 * the REGISTER walk that calls it.
 */
__noinline int run_end(struct xdp_md *ctx, __u32 pos, __u32 end, __u32 flen, __u32 preamble)
{
	__u64 also = preamble ? ~0ULL : 0, x, other;
	__u8 *data, *data_end, *p;
	__u32 k;

	if (!ctx)
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/*
	 * Whole words read in place, the frame's last few bytes once after the
	 * loop: one path per step keeps the verifier's walk of the loop short.
	 * No branch on preamble inside the loop, for the same reason.
	 */
	for (k = 0; k < SIP_MAX_WORDS; k++, pos += 8) {
		if (pos >= end)
			return end;
		p = data + (pos & FRAME_OFF_MASK);
		if (p + 8 > data_end)
			break;
		x = *(__u64 *)p;
		other = ~(blanks(x) | (preamble_bytes(x) & also)) & 0x8080808080808080ULL;
		if (other)
			goto found;
	}
	if (k == SIP_MAX_WORDS)
		return -1;
	/* Past the frame's end frame_load8 reads 0s: NUL, a preamble byte, or for blanks an end at >= flen >= end. */
	x = frame_load8(data, data_end, pos, flen);
	other = ~(blanks(x) | (preamble_bytes(x) & also)) & 0x8080808080808080ULL;
	if (!other)
		return end;
found:
	pos += first_flagged_byte(other);
	return pos < end ? pos : end;
}

/*
 * True when the n-byte header name at pos is followed by any run of SP/HTAB
 * and ':' (HCOLON) before lim. The first 8 bytes word-wise with no loop (each
 * branch here multiplies the paths the verifier walks through every step of
 * the REGISTER walk); a longer run goes to run_end.
 */
static __always_inline int name_ends(struct xdp_md *ctx, __u8 *data, void *data_end, __u32 pos, __u32 n, __u32 lim, __u32 flen)
{
	__u64 y = frame_load8(data, data_end, pos + n, flen);
	__u64 other = ~blanks(y) & 0x8080808080808080ULL;
	__u32 i;
	int at;

	if (!other) {
		at = run_end(ctx, pos + n + 8, lim, flen, 0);
		return at >= 0 && (__u32)at < lim && (frame_load8(data, data_end, (__u32)at, flen) & 0xff) == ':';
	}
	i = first_flagged_byte(other);
	return ((y >> (i * 8)) & 0xff) == ':' && pos + n + i < lim;
}

/*
 * Which required header starts the line whose first 8 bytes are x at pos: full
 * or compact name, any case; 0 if none. One switch on the first letter, then
 * one masked compare and one look for the colon.
 */
static __always_inline __u32 header_kind(struct xdp_md *ctx, __u8 *data, void *data_end, __u64 x, __u32 pos, __u32 lim, __u32 flen)
{
	__u64 lx = x | LOWER_CASE; /* every byte, so compare only where the name has letters */
	__u32 kind, n = 1;

	switch (lx & 0xff) {
	case 'v':
		kind = HDR_VIA;
		if ((lx & LOW_BYTES(3)) == C8('v', 'i', 'a', 0, 0, 0, 0, 0))
			n = 3;
		break;
	case 'f':
		kind = HDR_FROM;
		if ((lx & LOW_BYTES(4)) == C8('f', 'r', 'o', 'm', 0, 0, 0, 0))
			n = 4;
		break;
	case 't':
		kind = HDR_TO;
		if ((lx & LOW_BYTES(2)) == C8('t', 'o', 0, 0, 0, 0, 0, 0))
			n = 2;
		break;
	case 'i':
		kind = HDR_CALLID;
		break;
	case 'c':
		/* "Call-ID": the '-' compared unfolded, so a CR there is no match. */
		if ((lx & LOW_BYTES(7) & ~C8(0, 0, 0, 0, 0xff, 0, 0, 0)) == C8('c', 'a', 'l', 'l', 0, 'i', 'd', 0) &&
		    ((x >> 32) & 0xff) == '-') {
			kind = HDR_CALLID;
			n = 7;
		} else if ((lx & LOW_BYTES(4)) == C8('c', 's', 'e', 'q', 0, 0, 0, 0)) {
			kind = HDR_CSEQ;
			n = 4;
		} else {
			return 0;
		}
		break;
	default:
		return 0;
	}
	return name_ends(ctx, data, data_end, pos, n, lim, flen) ? kind : 0;
}

/*
 * 1 unless seen holds every HDR_* bit. Arithmetic, not a compare: a branch on
 * seen would make the verifier track each combination of headers separately
 * through the walk, and the walk would no longer verify.
 */
static __always_inline int missing_headers(__u32 seen)
{
	return (2 * HDR_ALL - (seen & HDR_ALL)) / (HDR_ALL + 1); /* HDR_ALL is 2^k - 1 */
}

/*
 * Steps of the REGISTER walk below: one per line plus one per 32 bytes read,
 * so a message of SIP_MAX_LEN with up to MAX_HEADER_LINES lines always fits.
 */
#define WORDS_PER_STEP 4
#define WALK_STEPS (SIP_MAX_WORDS / WORDS_PER_STEP + MAX_HEADER_LINES + 2)

/*
 * The REGISTER check is two global functions, each with one loop and no calls
 * inside. Global, so the verifier checks each once from unknown arguments,
 * not the header loop again for each way the request-line loop can end. No
 * calls inside: the check it replaced made two per header line (a bpf_loop
 * callback and the LF search) and took 368 ns on a 500-byte REGISTER where
 * this takes 233 (bench/xdp-paths.ts). Offsets are __u32 on purpose: with
 * 64-bit ones the verifier carries each step's bounds into the next and the
 * walk no longer verifies.
 */

/*
 * Offset just past the line end of the request line "REGISTER " scheme URI
 * " SIP/2.0" CRLF or LF (the URI any length; scheme and SIP-Version in any
 * case, RFC 3261 7.1 and 19.1.1; a bare LF as Kamailio and OpenSIPS take it,
 * see headers_malformed) of the message at off, or -1 when the line is
 * malformed.
 */
__noinline int request_line_end(struct xdp_md *ctx, __u32 off, __u32 lim, __u32 flen)
{
	__u32 w = off + 9;
	__u64 x, m = 0;
	__u8 *data, *data_end;

	if (!ctx)
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	x = frame_load8(data, data_end, w, flen) | LOWER_CASE;
	if ((x & LOW_BYTES(4)) != C8('s', 'i', 'p', ':', 0, 0, 0, 0) &&
	    (x & LOW_BYTES(5)) != C8('s', 'i', 'p', 's', ':', 0, 0, 0))
		return -1;
	for (__u32 k = 0; k <= SIP_MAX_WORDS; k++, w += 8) {
		if (w >= lim)
			return -1;
		m = uri_ends(frame_load8(data, data_end, w, flen));
		if (m)
			break;
	}
	w += first_flagged_byte(m); /* the SP before SIP/2.0, if well formed */
	if (!m || w + 9 > lim ||
	    (frame_load8(data, data_end, w, flen) | C8(0, 0x20, 0x20, 0x20, 0, 0, 0, 0)) !=
		    C8(' ', 's', 'i', 'p', '/', '2', '.', '0'))
		return -1;
	x = frame_load8(data, data_end, w + 8, flen);
	if ((x & 0xff) == '\n')
		return w + 9;
	if (w + 10 > lim || (x & LOW_BYTES(2)) != C8('\r', '\n', 0, 0, 0, 0, 0, 0))
		return -1;
	return w + 10;
}

/*
 * 1 when the header block at pos lacks Via/From/To/Call-ID/CSeq or its end,
 * 0 when it is complete or its walk is longer than WALK_STEPS (not judged).
 * Each step reads up to WORDS_PER_STEP words looking for an LF and, when it
 * finds one, judges the line that starts after it. Lines end at LF, with or
 * without a CR before it, and the headers end at the first line that starts
 * with CR or LF: so both servers read them (get_hdr_field in Kamailio and
 * OpenSIPS: "double crlf or lflf or crcr"). RFC 3261 7 requires CRLF of
 * senders and says nothing of a bare LF on receipt; HTTP/1.1, whose format
 * SIP follows, asks tolerant receivers to take one (RFC 2616 19.3). Headers
 * after that line are body to the servers, and to us.
 */
__noinline int headers_malformed(struct xdp_md *ctx, __u32 pos, __u32 lim, __u32 flen)
{
	__u32 w = pos;
	__u64 x, m = 0;
	__u8 *data, *data_end;
	__u32 seen;

	if (!ctx || w + 2 > lim)
		return 1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	x = frame_load8(data, data_end, w, flen);
	if ((x & 0xff) == '\r' || (x & 0xff) == '\n')
		return 1; /* no headers at all */
	seen = header_kind(ctx, data, data_end, x, w, lim, flen);
	for (__u32 k = 0; k < WALK_STEPS; k++) {
		__u32 line;

#pragma unroll
		for (int j = 0; j < WORDS_PER_STEP; j++) {
			if (w >= lim)
				return 1; /* the message ends inside a line: no empty line */
			m = bytes_equal(frame_load8(data, data_end, w, flen), '\n');
			if (m)
				break;
			w += 8;
		}
		if (!m)
			continue;
		line = w + first_flagged_byte(m) + 1;
		if (line >= lim)
			return 1; /* the message ends with this line: no end of headers */
		x = frame_load8(data, data_end, line, flen);
		if ((x & 0xff) == '\r' || (x & 0xff) == '\n')
			return missing_headers(seen);
		seen |= header_kind(ctx, data, data_end, x, line, lim, flen);
		w = line;
	}
	return 0;
}

/*
 * 1 when the REGISTER of len bytes at frame offset off is malformed: a bad
 * request line, a missing Via/From/To/Call-ID/CSeq, or no end of headers. 0
 * when it is fine or cannot be judged (larger than SIP_MAX_LEN, cut short, or
 * a walk longer than WALK_STEPS): we never drop what we have not read.
 */
static __always_inline int register_malformed(struct xdp_md *ctx, __u32 off, __u32 len, __u32 flen)
{
	int headers;

	if (len > SIP_MAX_LEN || off + len > flen)
		return 0;
	if (len < 16)
		return 1; /* too short to hold "REGISTER sip:x SIP/2.0\r\n" */
	headers = request_line_end(ctx, off, off + len, flen);
	return headers < 0 ? 1 : headers_malformed(ctx, headers, off + len, flen);
}

/* What the SIP checks make of one UDP payload. */
enum sip_verdict {
	SIP_NOTHING,            /* no check applies: pass */
	SIP_OPTIONS,            /* an OPTIONS request: the caller applies options_allow */
	SIP_MALFORMED_REGISTER, /* drop */
	SIP_TINY_FRAGMENT,      /* a first fragment too short to judge: drop */
	SIP_UNJUDGED,           /* the payload starts past what the checks read: drop */
};

/*
 * Which judged method the first 8 bytes of a start line hold: SIP_OPTIONS
 * for "OPTIONS ", SIP_MALFORMED_REGISTER for "REGISTER" (its SP is byte 9,
 * checked by judge_register), else SIP_NOTHING. Methods are compared in any
 * case and must be followed by exactly one SP: so Kamailio and OpenSIPS read
 * them (parse_first_line; RFC 3261 7.1 makes methods case-sensitive, the
 * servers do not), and any other separator makes no request to them.
 */
static __always_inline enum sip_verdict method_of(__u64 head)
{
	if ((head | C8(0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0)) == C8('o', 'p', 't', 'i', 'o', 'n', 's', ' '))
		return SIP_OPTIONS;
	if ((head | LOWER_CASE) == C8('r', 'e', 'g', 'i', 's', 't', 'e', 'r'))
		return SIP_MALFORMED_REGISTER;
	return SIP_NOTHING;
}

/*
 * SIP_MALFORMED_REGISTER when the REGISTER starting at frame offset start
 * and ending at end is followed by its SP and malformed, else SIP_NOTHING.
 */
static __always_inline enum sip_verdict judge_register(struct xdp_md *ctx, __u32 start, __u32 end)
{
	__u8 *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 flen = data_end - (void *)data;

	if (start + 9 <= end && (frame_load8(data, data_end, start + 8, flen) & 0xff) == ' ' &&
	    register_malformed(ctx, start, end - start, flen))
		return SIP_MALFORMED_REGISTER;
	return SIP_NOTHING;
}

/*
 * The SIP checks on one UDP datagram to a SIP port, for IPv4 and IPv6 alike:
 * udp: its header, bounds-checked, in the frame; ip_end: the frame offset
 * where the IP payload ends as the kernel reads it (ip_payload_end4/6);
 * ipv6: 1 for IPv6 (UDP length 0 means something there); fragment: a first
 * fragment, more follow; flags: VFP_CFG_*. The slow paths are global
 * functions, which take no packet pointers: they get the frame and offsets.
 *
 * The checks judge exactly the bytes the kernel delivers to the socket
 * (bounded by what they read): the UDP payload ends where __udp4_lib_rcv
 * and __udp6_lib_rcv end it, at the UDP length, or for IPv6 a UDP length of
 * 0 at the end of the IP payload (RFC 2675; the kernel takes it so for any
 * datagram, jumbo or not), never at the frame's end (Ethernet padding and
 * other trailing bytes are not delivered). A datagram the kernel drops (UDP
 * length 1 to 7, or 0 over IPv4, or past the IP payload; an IP payload past
 * the frame) is not judged: SIP_NOTHING, it passes and the kernel drops it.
 *
 * The start line is found as the servers find it: past any preamble of CR,
 * LF, NUL, HTAB and SP (fewer than SIP_MAX_LEN bytes, or the datagram passes
 * unjudged; see preamble_bytes). A payload starting past SIP_MAX_PAYLOAD_OFF
 * is SIP_UNJUDGED: the checks cannot read it, and passing it would let any
 * OPTIONS through behind enough IPv6 extension headers. A first fragment
 * showing fewer than SIP_MIN_FIRST_FRAGMENT bytes past it is tiny.
 */
static __always_inline enum sip_verdict sip_judge(struct xdp_md *ctx, struct udphdr *udp, void *data_end,
						  __u32 ip_end, int ipv6, int fragment, __u32 flags)
{
	__u8 *data = (void *)(long)ctx->data;
	__u8 *payload = (__u8 *)(udp + 1);
	__u32 off = payload - data, flen = data_end - (void *)data, end, start;
	__u16 ulen = bpf_ntohs(udp->len);
	__u64 head;
	int at;

	if (off > SIP_MAX_PAYLOAD_OFF)
		return SIP_UNJUDGED; /* reads past FRAME_OFF_MASK would wrap */
	barrier_var(off); /* else the compiler, knowing the bound, drops the mask the verifier needs */
	if (ip_end > flen || off > ip_end)
		return SIP_NOTHING; /* the kernel drops a packet cut short (ip_rcv_core, ip6_rcv_core) */
	if (ulen == 0 && ipv6) {
		end = ip_end; /* __udp6_lib_rcv: "if (ulen == 0) ulen = skb->len" */
	} else if (ulen < sizeof(*udp)) {
		return SIP_NOTHING; /* the kernel drops it: short_packet */
	} else {
		end = off + ulen - sizeof(*udp);
		if (end > ip_end) {
			/* Past the IP payload: short_packet, unless the rest is in later fragments. */
			if (!fragment)
				return SIP_NOTHING;
			end = ip_end;
		}
	}
	/* The common case, in place: a whole datagram whose first byte starts its start line. */
	if (!fragment && off + 9 <= end && (void *)(payload + 9) <= data_end) {
		head = *(__u64 *)payload;
		if ((head & 0xff) > ' ') {
			enum sip_verdict method = method_of(head);

			if (method != SIP_MALFORMED_REGISTER || !(flags & VFP_CFG_MALFORMED))
				return method == SIP_OPTIONS ? SIP_OPTIONS : SIP_NOTHING;
			return judge_register(ctx, off, end);
		}
	}
	/* Rare: a preamble, a keepalive, a first fragment, a datagram of under 9 bytes. */
	at = run_end(ctx, off, end, flen, 1);
	if (at < 0)
		return SIP_NOTHING;
	start = at;
	if (fragment && start + SIP_MIN_FIRST_FRAGMENT > end)
		return (flags & VFP_CFG_STEALTH) ? SIP_TINY_FRAGMENT : SIP_NOTHING;
	if (start + 8 > end)
		return SIP_NOTHING; /* too short for any method we judge and its SP */
	switch (method_of(frame_load8(data, data_end, start, flen))) {
	case SIP_OPTIONS:
		return SIP_OPTIONS;
	case SIP_MALFORMED_REGISTER:
		/* A first fragment holds only part of the message: not ours to judge. */
		if (!fragment && (flags & VFP_CFG_MALFORMED))
			return judge_register(ctx, start, end);
		return SIP_NOTHING;
	default:
		return SIP_NOTHING;
	}
}

static __always_inline int block_live(const struct vfp_block *b)
{
	return b && (b->expires_ns == 0 || b->expires_ns > bpf_ktime_get_boot_ns());
}

static __always_inline int is_sip_port(const struct vfp_config *cfg, __u16 port)
{
#pragma unroll
	for (__u32 i = 0; i < VFP_MAX_SIP_PORTS; i++) {
		if (i >= cfg->nports)
			return 0;
		if (cfg->ports[i] == port)
			return 1;
	}
	return 0;
}

/* fam: 0 for IPv4, VFP_STAT_IPV6 for IPv6 (the half of the stats map counting it). */
static __always_inline int drop(__u32 reason, __u32 fam, __u32 bytes, const struct vfp_config *cfg)
{
	if (cfg->flags & VFP_CFG_SHADOW)
		return count(fam + VFP_STAT_SHADOW_WOULD_DROP, bytes, XDP_PASS);
	return count(fam + reason, bytes, XDP_DROP);
}

/* The L4 header of a first (or whole) datagram: sets *udp for UDP, returns the destination port (0: none). */
static __always_inline __u16 l4_dport(void *l4, void *data_end, __u8 proto, struct udphdr **udp)
{
	if (proto == IPPROTO_UDP) {
		struct udphdr *u = l4;

		if ((void *)(u + 1) > data_end)
			return 0;
		*udp = u;
		return bpf_ntohs(u->dest);
	}
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) <= data_end)
			return bpf_ntohs(tcp->dest);
	}
	return 0;
}

/*
 * What follows the blocklist, for both families: the SIP checks on UDP to a
 * SIP port (options_allowed says whether the source may send OPTIONS, looked
 * up only for an OPTIONS), then the AF_XDP redirect or a pass.
 */
static __always_inline int judge_rest(struct xdp_md *ctx, struct udphdr *udp, void *data_end, int to_sip,
				      __u32 ip_end, int fragment, __u32 fam,
				      const struct vfp_config *cfg, void *options_map, const void *options_key)
{
	__u32 bytes = data_end - (void *)(long)ctx->data, qid;

	if (udp && to_sip && (cfg->flags & (VFP_CFG_STEALTH | VFP_CFG_MALFORMED))) {
		switch (sip_judge(ctx, udp, data_end, ip_end, fam != 0, fragment, cfg->flags)) {
		case SIP_OPTIONS:
			if ((cfg->flags & VFP_CFG_STEALTH) && !bpf_map_lookup_elem(options_map, options_key))
				return drop(VFP_STAT_OPTIONS_DROPPED, fam, bytes, cfg);
			break;
		case SIP_MALFORMED_REGISTER:
			return drop(VFP_STAT_MALFORMED_REGISTER, fam, bytes, cfg);
		case SIP_TINY_FRAGMENT:
			return drop(VFP_STAT_TINY_FRAGMENT, fam, bytes, cfg);
		case SIP_UNJUDGED:
			return drop(VFP_STAT_UNJUDGED, fam, bytes, cfg);
		default:
			break;
		}
	}

	qid = ctx->rx_queue_index;
	if (bpf_map_lookup_elem(&xsks_map, &qid))
		return count(fam + VFP_STAT_REDIRECTED, bytes, bpf_redirect_map(&xsks_map, qid, XDP_PASS));
	return count(fam + VFP_STAT_PASSED, bytes, XDP_PASS);
}

static __always_inline int judge_ipv4(struct xdp_md *ctx, struct hdr_cursor *cur, const struct vfp_config *cfg)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	__u32 bytes = data_end - data;
	struct udphdr *udp = NULL;
	struct iphdr *iph;
	__u16 frag, dport = 0;
	int to_sip = 0;

	iph = parse_iphdr(cur, data_end);
	if (!iph)
		return count(VFP_STAT_PASSED, bytes, XDP_PASS);

	struct vfp_lpm_key key = { .prefixlen = 32, .addr = iph->saddr };

	if (bpf_map_lookup_elem(&allow_ips, &key))
		return count(VFP_STAT_ALLOWLISTED, bytes, XDP_PASS);

	/* Only a first (or unfragmented) fragment has an L4 header to read. */
	frag = bpf_ntohs(iph->frag_off);
	if (!(frag & IP_OFFSET)) {
		dport = l4_dport(cur->pos, data_end, iph->protocol, &udp);
		if (dport)
			to_sip = is_sip_port(cfg, dport);
	}

	if (!(cfg->flags & VFP_CFG_SCOPE_SIP_ONLY) || to_sip || (frag & IP_OFFSET)) {
		if (block_live(bpf_map_lookup_elem(&blocked_ips, &key.addr)))
			return drop(VFP_STAT_BLOCKED_EXACT, 0, bytes, cfg);
		if (block_live(bpf_map_lookup_elem(&blocked_prefixes, &key)))
			return drop(VFP_STAT_BLOCKED_PREFIX, 0, bytes, cfg);
	}
	/* The IP payload ends at tot_len (ip_rcv_core trims the packet to it). */
	return judge_rest(ctx, udp, data_end, to_sip, ((void *)iph - data) + bpf_ntohs(iph->tot_len), frag & IP_MF, 0,
			  cfg, &options_allow, &key);
}

/* Extension headers ext_walk walks (RFC 8200 4.1, 4.3-4.5): the ones a SIP datagram may carry. */
static __always_inline int ext_walked(__u32 proto)
{
	return proto == IPPROTO_HOPOPTS || proto == IPPROTO_ROUTING || proto == IPPROTO_DSTOPTS ||
	       proto == IPPROTO_FRAGMENT;
}

/*
 * Extension headers it does not walk (IANA's list, RFC 7045): AH (51; the
 * kernel delivers what follows only under a security association), Mobility
 * (135), HIP (139), Shim6 (140) and the experimental 253 and 254. What follows
 * them is not judged: passed, counted unparsed_headers. ESP (50) encrypts
 * what follows: an upper layer, as for IPv4.
 */
static __always_inline int ext_unwalked(__u32 proto)
{
	return proto == IPPROTO_AH || proto == 135 || proto == 139 || proto == 140 || proto == 253 || proto == 254;
}

/*
 * Any extension header, walked or not: what sends a frame to ext_walk. One
 * shift and mask for the common upper layers (UDP, TCP: below 64), so a frame
 * without extension headers pays two compares, as before the walk.
 */
#define EXT_LOW_MASK ((1ULL << IPPROTO_HOPOPTS) | (1ULL << IPPROTO_ROUTING) | (1ULL << IPPROTO_FRAGMENT) | \
		      (1ULL << IPPROTO_AH) | (1ULL << IPPROTO_DSTOPTS))
static __always_inline int ext_header(__u32 proto)
{
	return proto < 64 ? !!((1ULL << proto) & EXT_LOW_MASK) : proto == 135 || proto == 139 || proto == 140 || proto >= 253;
}

/* What ext_walk returns: a chain it could not follow to the upper layer (< 0), ... */
#define WALK_CUT_SHORT -1 /* the frame ends inside the chain (the kernel drops it too) */
#define WALK_UNWALKED  -2 /* an extension header ext_unwalked names */
#define WALK_BEYOND    -3 /* the chain runs past EXT_MAX_OFF (frames over 64 KiB) */
/* ... or the upper layer's frame offset (bits 0-16), its protocol (17-24) and the fragment header's bits. */
#define WALK_MORE      (1 << 25) /* a first fragment: M set, offset 0 */
#define WALK_LATER     (1 << 26) /* a non-first fragment: offset > 0, no L4 header follows */
#define WALK_AGAIN     (1 << 27) /* ext_walk_batch only: the walk goes on from here */
#define WALK_OFF(w)    ((__u32)(w) & 0x1ffff)
#define WALK_PROTO(w)  (((__u32)(w) >> 17) & 0xff)
/* Headers one call of ext_walk_batch walks: its loop is verified step by step, so it stays short. */
#define EXT_WALK_BATCH 64

/*
 * Walk up to EXT_WALK_BATCH extension headers from frame offset off, where a
 * header of type proto starts (frag: the WALK_MORE bit so far). Returns as
 * ext_walk does, or with WALK_AGAIN where the walk goes on. Each step checks
 * that the header's first 8 bytes are in the frame before reading them, and
 * that its length ends within the frame. A fragment header with a non-zero
 * offset ends the walk: fragment data, not headers, follows it (RFC 8200 4.5).
 */
__noinline int ext_walk_batch(struct xdp_md *ctx, __u32 off32, __u32 proto, __u32 frag32)
{
	__u8 *data, *data_end, *p;
	/* 64-bit: a 32-bit offset is zero-extended afresh for each use and loses its bound. */
	__u64 off = off32, frag = frag32 & WALK_MORE, flen, fo;

	if (!ctx)
		return WALK_CUT_SHORT;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	flen = data_end - data;
	proto &= 0xff;
	for (__u32 i = 0; i < EXT_WALK_BATCH; i++) {
		if (!ext_walked(proto))
			return ext_unwalked(proto) ? WALK_UNWALKED : (int)(off | proto << 17 | frag);
		if (off > EXT_MAX_OFF)
			return WALK_BEYOND;
		p = data + off;
		if (p + 8 > data_end)
			return WALK_CUT_SHORT;
		if (proto == IPPROTO_FRAGMENT) {
			fo = (__u32)p[2] << 8 | p[3];
			frag = (fo & IP6_MF ? WALK_MORE : 0) | (fo & IP6_OFFSET ? WALK_LATER : 0);
			proto = p[0];
			off += 8;
			if (frag & WALK_LATER)
				return off | proto << 17 | frag;
		} else {
			proto = p[0];
			off += ((__u32)p[1] + 1) * 8;
			if (off > flen)
				return WALK_CUT_SHORT;
		}
	}
	return off | proto << 17 | frag | WALK_AGAIN;
}

/*
 * Walk the IPv6 extension headers from frame offset off, whose type is proto,
 * to the upper layer (see EXT_MAX_OFF for the bound and the outcomes). Two
 * global functions, each verified once on its own: this loop of
 * EXT_WALK_STEPS / EXT_WALK_BATCH calls, and ext_walk_batch's short loop (a
 * single loop of EXT_WALK_STEPS steps is more than the verifier follows). The
 * common frame, with no extension header, never calls it.
 */
__noinline int ext_walk(struct xdp_md *ctx, __u32 off, __u32 proto)
{
	int w = off | (proto & 0xff) << 17;

	for (__u32 i = 0; i < EXT_WALK_STEPS / EXT_WALK_BATCH; i++) {
		w = ext_walk_batch(ctx, WALK_OFF(w), WALK_PROTO(w), w);
		if (w < 0 || !(w & WALK_AGAIN))
			return w;
	}
	return WALK_BEYOND; /* not reached: see EXT_WALK_STEPS */
}

static __always_inline int judge_ipv6(struct xdp_md *ctx, struct hdr_cursor *cur, const struct vfp_config *cfg)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	__u32 bytes = data_end - data, fam = VFP_STAT_IPV6;
	struct udphdr *udp = NULL;
	struct ipv6hdr *ip6h = cur->pos;
	__u16 frag = 0, dport = 0;
	__u32 l3_base, l4_off, plen, ip_end;
	int to_sip = 0, parsed = 0, w;
	__u32 proto;

	if ((void *)(ip6h + 1) > data_end)
		return count(fam + VFP_STAT_PASSED, bytes, XDP_PASS);
	cur->pos = ip6h + 1;
	l3_base = cur->pos - data;

	struct vfp_lpm_key6 key = { .prefixlen = 128 };

	__builtin_memcpy(key.addr, &ip6h->saddr, sizeof(key.addr));
	if (bpf_map_lookup_elem(&allow_ips6, &key))
		return count(fam + VFP_STAT_ALLOWLISTED, bytes, XDP_PASS);

	proto = ip6h->nexthdr;
	if (ext_header(proto)) {
		/* The rare frame with extension headers: walked by a function of its own. */
		w = ext_walk(ctx, l3_base, proto);
		l4_off = WALK_OFF(w);
		if (w < 0 || l4_off > EXT_MAX_OFF) {
			parsed = -1;
		} else {
			barrier_var(l4_off);
			cur->pos = data + l4_off;
			proto = WALK_PROTO(w);
			frag = (w & WALK_MORE ? IP6_MF : 0) | (w & WALK_LATER ? IP6_OFFSET : 0);
		}
	}
	/* Only a first (or unfragmented) fragment has an L4 header to read. */
	if (parsed == 0 && !(frag & IP6_OFFSET)) {
		dport = l4_dport(cur->pos, data_end, proto, &udp);
		if (dport)
			to_sip = is_sip_port(cfg, dport);
	}

	/* No port to see (a non-first fragment, a chain not followed): the blocklist applies whatever the scope. */
	if (!(cfg->flags & VFP_CFG_SCOPE_SIP_ONLY) || to_sip || (frag & IP6_OFFSET) || parsed < 0) {
		if (block_live(bpf_map_lookup_elem(&blocked_ips6, key.addr)))
			return drop(VFP_STAT_BLOCKED_EXACT, fam, bytes, cfg);
		if (block_live(bpf_map_lookup_elem(&blocked_prefixes6, &key)))
			return drop(VFP_STAT_BLOCKED_PREFIX, fam, bytes, cfg);
	}
	if (parsed < 0)
		return count(fam + VFP_STAT_UNPARSED_HEADERS, bytes, XDP_PASS);
	/*
	 * ICMPv6 is the kernel's: neighbour discovery (RFC 4861) must reach it, or
	 * IPv6 on the link dies; an AF_XDP socket gets the rest, as for IPv4.
	 */
	if (proto == IPPROTO_ICMPV6)
		return count(fam + VFP_STAT_PASSED, bytes, XDP_PASS);
	/*
	 * The IP payload ends at payload_len (ip6_rcv_core trims the packet to
	 * it), except that a payload_len of 0 before a hop-by-hop header leaves
	 * the packet untrimmed (RFC 2675 jumbograms): it runs to the frame's end.
	 * A jumbo option would trim it to 65,536 bytes or more, farther than the
	 * checks read, so the verdict is the same; a payload_len of 0 before
	 * anything else leaves no UDP header, and the kernel drops the packet.
	 */
	plen = bpf_ntohs(ip6h->payload_len);
	ip_end = plen ? l3_base + plen : ip6h->nexthdr == IPPROTO_HOPOPTS ? bytes : l3_base;
	return judge_rest(ctx, udp, data_end, to_sip, ip_end, frag & IP6_MF, fam, cfg, &options_allow6, &key);
}

SEC("xdp")
int vfp_xdp(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	__u32 bytes = data_end - data;
	struct hdr_cursor cur = { .pos = data };
	struct vfp_config *cfg;
	__u32 zero = 0;
	int proto;

	proto = parse_ethhdr(&cur, data_end);
	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return count(VFP_STAT_NOT_IP, bytes, XDP_PASS);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return count(VFP_STAT_PASSED, bytes, XDP_PASS);
	if (proto == bpf_htons(ETH_P_IPV6))
		return judge_ipv6(ctx, &cur, cfg);
	return judge_ipv4(ctx, &cur, cfg);
}

/*
 * libxdp's dispatcher: run early (lower runs first; xdp-filter uses 10, libxdp's
 * default is 50) and hand what we pass to the next program. vfp-xdp attach
 * --priority overrides the priority.
 */
#define VFP_RUN_PRIORITY 5
struct {
	__uint(priority, VFP_RUN_PRIORITY);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(vfp_xdp);

char LICENSE[] SEC("license") = "GPL";
