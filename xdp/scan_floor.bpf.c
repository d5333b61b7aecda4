// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark reference: the least a full read of a SIP message costs. Finds
 * the UDP payload and counts its line feeds 8 bytes at a time (SWAR), reading
 * the packet in place: no copy, no header names, no verdict logic. What
 * bench/xdp-paths.ts prints as the floor of any check that reads every line
 * of a REGISTER.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_WORDS 512 /* 4 KiB, as the real program reads */

SEC("xdp")
int scan_floor(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *udp = (void *)(iph + 1);
	__u8 *p = (void *)(udp + 1);
	__u64 seen = 0; /* OR of the per-word LF flags: no branch per word, so the verifier walks one path */

	if ((void *)p > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	for (int k = 0; k < MAX_WORDS; k++) {
		__u64 x, y;

		if ((void *)(p + 8) > data_end)
			break;
		x = *(__u64 *)p;
		y = x ^ 0x0a0a0a0a0a0a0a0aULL;
		seen |= (y - 0x0101010101010101ULL) & ~y & 0x8080808080808080ULL;
		p += 8;
	}
	return seen ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
