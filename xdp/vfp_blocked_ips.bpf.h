/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The blocked_ips map as BPF programs declare it: vos_fastpath.bpf.c and the
 * benchmark floor (lookup_floor.bpf.c) reuse the same pinned map, so they must
 * declare it identically. Capacity is a default only: scripts/load.sh creates
 * the pinned map with the operator's capacity and the loader reuses it.
 */
#ifndef VFP_BLOCKED_IPS_BPF_H
#define VFP_BLOCKED_IPS_BPF_H

#include <bpf/bpf_helpers.h>
#include "vfp_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VFP_DEFAULT_BLOCK_CAPACITY);
	__type(key, __u32);
	__type(value, struct vfp_block);
} blocked_ips SEC(".maps");

#endif
