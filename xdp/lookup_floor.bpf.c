// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark reference: the least a blocklist drop can cost. Ethernet and IPv4
 * headers (no VLANs), one lookup of the source in blocked_ips (the same pinned
 * map the real program uses), XDP_DROP on a hit. No allowlist, no expiry, no
 * counters: what bench/xdp-paths.ts prints as the floor of the drop path.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "vfp_blocked_ips.bpf.h"

SEC("xdp")
int lookup_floor(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	return bpf_map_lookup_elem(&blocked_ips, &iph->saddr) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
