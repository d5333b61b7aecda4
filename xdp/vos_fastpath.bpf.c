// SPDX-License-Identifier: GPL-2.0
/*
 * vos-fastpath: drop bad SIP traffic at the NIC.
 *
 * Policy, in order, for every IPv4 frame:
 *   allowlisted source            -> pass (nothing below applies)
 *   source in the blocklist       -> drop
 *   UDP to a SIP port:
 *     OPTIONS from a source not in options_allow -> drop (stealth)
 *     malformed REGISTER                         -> drop
 *   AF_XDP socket on this queue   -> redirect, else pass
 * Shadow mode counts every would-drop and drops nothing.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "vfp_maps.h"
#include "vfp_blocked_ips.bpf.h"

/* Large enough for any unfragmented SIP datagram on a 1500 or 4k MTU. */
#define SIP_SCRATCH_LEN   4096
#define SIP_SCRATCH_MASK  (SIP_SCRATCH_LEN - 1)
#define SIP_SCRATCH_WORDS (SIP_SCRATCH_LEN / 8)
#define MAX_HEADER_LINES  128
#define MAX_VLAN_TAGS     2
#define MAX_HEADER_WS     8
#define IP_MF             0x2000
#define IP_OFFSET         0x1fff

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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vfp_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VFP_STAT_MAX);
	__type(key, __u32);
	__type(value, struct vfp_counter);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, VFP_XSK_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct sip_scratch {
	__u8 buf[SIP_SCRATCH_LEN + 16]; /* slack so an 8-byte read at any masked offset stays inside */
};

/* Not pinned: per-CPU working copy of one SIP payload. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sip_scratch);
} sip_scratch SEC(".maps");

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
 * 8 bytes at any offset. Told "aligned", clang emits one 64-bit load instead of
 * eight byte loads and shifts (22 instructions); the load itself may be
 * misaligned, which the verifier accepts and the JIT performs on architectures
 * with efficient unaligned access (x86-64, arm64: the machines this runs on).
 */
static __always_inline __u64 load8(struct sip_scratch *s, __u32 pos)
{
	return *(__u64 *)__builtin_assume_aligned(&s->buf[pos & SIP_SCRATCH_MASK], 8);
}

/*
 * Offset of the first LF (or, with stop_at_space, SP/CR/LF) at or after start,
 * or -1. Inlined into one global function per delimiter set, so the word loop
 * carries no run-time choice: about a dozen instructions per 8 bytes.
 */
static __always_inline int scan_for(struct sip_scratch *s, __u32 start, __u32 len, const int stop_at_space)
{
	__u64 w = start, end = len;

	for (__u32 k = 0; k < SIP_SCRATCH_WORDS; k++, w += 8) {
		__u64 x, m;

		if (w >= end)
			return -1;
		x = load8(s, w);
		m = bytes_equal(x, '\n');
		if (stop_at_space)
			m |= bytes_equal(x, ' ') | bytes_equal(x, '\r');
		if (m) {
			__u64 p = w + first_flagged_byte(m);

			return p < end ? (int)p : -1;
		}
	}
	return -1;
}

/* Global functions: the verifier checks each 512-word loop once, not per caller. */
__noinline int find_lf(struct sip_scratch *s, __u32 start, __u32 len)
{
	return s ? scan_for(s, start, len, 0) : -1;
}

__noinline int find_uri_end(struct sip_scratch *s, __u32 start, __u32 len)
{
	return s ? scan_for(s, start, len, 1) : -1;
}

#define HDR_VIA    (1u << 0)
#define HDR_FROM   (1u << 1)
#define HDR_TO     (1u << 2)
#define HDR_CALLID (1u << 3)
#define HDR_CSEQ   (1u << 4)
#define HDR_ALL    (HDR_VIA | HDR_FROM | HDR_TO | HDR_CALLID | HDR_CSEQ)

/* True when the header name of n bytes at pos is followed by optional SP/HTAB and ':'. */
static __always_inline int name_ends(struct sip_scratch *s, __u32 pos, __u32 n, __u32 len)
{
#pragma unroll
	for (__u32 k = 0; k < MAX_HEADER_WS; k++) {
		__u32 q = pos + n + k;
		__u8 c;

		if (q >= len)
			return 0;
		c = s->buf[q & SIP_SCRATCH_MASK];
		if (c == ':')
			return 1;
		if (c != ' ' && c != '\t')
			return 0;
	}
	return 0;
}

/* Which required header (full or compact name) starts the line at pos; 0 if none. */
static __always_inline __u32 header_kind(struct sip_scratch *s, __u32 pos, __u32 len)
{
	__u64 lx = load8(s, pos) | LOWER_CASE;

	if ((lx & LOW_BYTES(3)) == C8('v', 'i', 'a', 0, 0, 0, 0, 0) && name_ends(s, pos, 3, len))
		return HDR_VIA;
	if ((lx & LOW_BYTES(4)) == C8('f', 'r', 'o', 'm', 0, 0, 0, 0) && name_ends(s, pos, 4, len))
		return HDR_FROM;
	if ((lx & LOW_BYTES(2)) == C8('t', 'o', 0, 0, 0, 0, 0, 0) && name_ends(s, pos, 2, len))
		return HDR_TO;
	if ((lx & LOW_BYTES(7)) == C8('c', 'a', 'l', 'l', '-', 'i', 'd', 0) && name_ends(s, pos, 7, len))
		return HDR_CALLID;
	if ((lx & LOW_BYTES(4)) == C8('c', 's', 'e', 'q', 0, 0, 0, 0) && name_ends(s, pos, 4, len))
		return HDR_CSEQ;
	if (!name_ends(s, pos, 1, len))
		return 0;
	switch (lx & 0xff) {
	case 'v': return HDR_VIA;
	case 'f': return HDR_FROM;
	case 't': return HDR_TO;
	case 'i': return HDR_CALLID;
	}
	return 0;
}

struct header_scan {
	__u32 pos;       /* start of the current header line */
	__u32 len;       /* payload bytes in scratch */
	__u32 seen;      /* HDR_* bits found so far */
	__u32 end_found; /* saw the empty line (CRLFCRLF) */
};

/* bpf_loop callback: one header line per call, so the verifier checks this body once. */
static long scan_header_line(__u32 index, void *ctx)
{
	struct header_scan *st = ctx;
	__u32 zero = 0, pos = st->pos;
	struct sip_scratch *s;
	int lf;

	s = bpf_map_lookup_elem(&sip_scratch, &zero);
	if (!s || pos + 2 > st->len)
		return 1;
	if ((load8(s, pos) & LOW_BYTES(2)) == C8('\r', '\n', 0, 0, 0, 0, 0, 0)) {
		st->end_found = 1;
		return 1;
	}
	st->seen |= header_kind(s, pos, st->len);
	lf = find_lf(s, pos, st->len);
	if (lf < 0)
		return 1;
	st->pos = lf + 1;
	return 0;
}

/*
 * 1 when the REGISTER at payload_off is malformed: a bad request line, a missing
 * Via/From/To/Call-ID/CSeq, or no end of headers. 0 when it is fine or cannot be
 * judged (larger than scratch, or more header lines than we walk): we never drop
 * what we have not read.
 */
static __always_inline int register_is_malformed(struct xdp_md *ctx, __u32 payload_off, __u32 len)
{
	struct header_scan st = {};
	struct sip_scratch *s;
	__u32 zero = 0;
	__u64 x;
	long loops;
	int sp;

	if (len > SIP_SCRATCH_LEN)
		return 0;
	if (len < 16)
		return 1; /* too short to hold "REGISTER sip:x SIP/2.0\r\n" */
	s = bpf_map_lookup_elem(&sip_scratch, &zero);
	if (!s)
		return 0;
	if (bpf_xdp_load_bytes(ctx, payload_off, s->buf, len) < 0)
		return 0;

	/* Request line: "REGISTER " scheme URI " SIP/2.0\r\n", the URI any length. */
	x = load8(s, 9) | LOWER_CASE;
	if ((x & LOW_BYTES(4)) != C8('s', 'i', 'p', ':', 0, 0, 0, 0) &&
	    (x & LOW_BYTES(5)) != C8('s', 'i', 'p', 's', ':', 0, 0, 0))
		return 1;
	sp = find_uri_end(s, 9, len);
	if (sp < 0 || (__u32)sp + 10 > len)
		return 1;
	if (load8(s, sp) != C8(' ', 'S', 'I', 'P', '/', '2', '.', '0') ||
	    (load8(s, sp + 8) & LOW_BYTES(2)) != C8('\r', '\n', 0, 0, 0, 0, 0, 0))
		return 1;

	st.pos = sp + 10;
	st.len = len;
	loops = bpf_loop(MAX_HEADER_LINES, scan_header_line, &st, 0);
	if (!st.end_found)
		return loops < MAX_HEADER_LINES ? 1 : 0;
	return (st.seen & HDR_ALL) != HDR_ALL;
}

static __always_inline int lpm_has(void *map, __u32 addr)
{
	struct vfp_lpm_key key = { .prefixlen = 32, .addr = addr };

	return bpf_map_lookup_elem(map, &key) != NULL;
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

static __always_inline int drop(__u32 reason, __u32 bytes, const struct vfp_config *cfg)
{
	if (cfg->flags & VFP_CFG_SHADOW)
		return count(VFP_STAT_SHADOW_WOULD_DROP, bytes, XDP_PASS);
	return count(reason, bytes, XDP_DROP);
}

SEC("xdp")
int vfp_xdp(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	__u32 bytes = data_end - data;
	struct hdr_cursor cur = { .pos = data };
	struct vfp_config *cfg;
	struct iphdr *iph;
	struct udphdr *udp = NULL;
	__u32 zero = 0, saddr, qid;
	__u16 frag, dport = 0;
	int to_sip = 0;

	if (parse_ethhdr(&cur, data_end) != bpf_htons(ETH_P_IP))
		return count(VFP_STAT_NOT_IPV4, bytes, XDP_PASS);
	iph = parse_iphdr(&cur, data_end);
	if (!iph)
		return count(VFP_STAT_PASSED, bytes, XDP_PASS);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return count(VFP_STAT_PASSED, bytes, XDP_PASS);

	saddr = iph->saddr;
	if (lpm_has(&allow_ips, saddr))
		return count(VFP_STAT_ALLOWLISTED, bytes, XDP_PASS);

	/* Only a first (or unfragmented) fragment has an L4 header to read. */
	frag = bpf_ntohs(iph->frag_off);
	if (!(frag & IP_OFFSET)) {
		if (iph->protocol == IPPROTO_UDP) {
			udp = cur.pos;
			if ((void *)(udp + 1) > data_end)
				udp = NULL;
			else
				dport = bpf_ntohs(udp->dest);
		} else if (iph->protocol == IPPROTO_TCP) {
			struct tcphdr *tcp = cur.pos;

			if ((void *)(tcp + 1) <= data_end)
				dport = bpf_ntohs(tcp->dest);
		}
		if (dport)
			to_sip = is_sip_port(cfg, dport);
	}

	if (!(cfg->flags & VFP_CFG_SCOPE_SIP_ONLY) || to_sip || (frag & IP_OFFSET)) {
		struct vfp_lpm_key key = { .prefixlen = 32, .addr = saddr };

		if (block_live(bpf_map_lookup_elem(&blocked_ips, &saddr)))
			return drop(VFP_STAT_BLOCKED_EXACT, bytes, cfg);
		if (block_live(bpf_map_lookup_elem(&blocked_prefixes, &key)))
			return drop(VFP_STAT_BLOCKED_PREFIX, bytes, cfg);
	}

	if (udp && to_sip && (cfg->flags & (VFP_CFG_STEALTH | VFP_CFG_MALFORMED))) {
		__u8 *payload = (__u8 *)(udp + 1);
		__u64 head;

		if ((void *)(payload + 9) <= data_end) {
			head = *(__u64 *)payload;
			if ((cfg->flags & VFP_CFG_STEALTH) &&
			    head == C8('O', 'P', 'T', 'I', 'O', 'N', 'S', ' ') &&
			    !lpm_has(&options_allow, saddr))
				return drop(VFP_STAT_OPTIONS_DROPPED, bytes, cfg);
			/* A first fragment holds only part of the message: not ours to judge. */
			if ((cfg->flags & VFP_CFG_MALFORMED) && !(frag & IP_MF) &&
			    head == C8('R', 'E', 'G', 'I', 'S', 'T', 'E', 'R') && payload[8] == ' ') {
				__u32 ulen = bpf_ntohs(udp->len);

				if (ulen >= sizeof(*udp) &&
				    register_is_malformed(ctx, (void *)payload - data, ulen - sizeof(*udp)))
					return drop(VFP_STAT_MALFORMED_REGISTER, bytes, cfg);
			}
		}
	}

	qid = ctx->rx_queue_index;
	if (bpf_map_lookup_elem(&xsks_map, &qid))
		return count(VFP_STAT_REDIRECTED, bytes, bpf_redirect_map(&xsks_map, qid, XDP_PASS));
	return count(VFP_STAT_PASSED, bytes, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
