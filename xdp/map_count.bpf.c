// SPDX-License-Identifier: GPL-2.0
/*
 * A bpf_map iterator that writes, for every map on the host, its id and the
 * kernel's own element count (bpf_map_sum_elem_count, Linux >= 6.6). Hash
 * maps keep that count on every insert and delete, so vfp-maptool reads the
 * fill level of a million-entry blocked_ips without walking it. Other map
 * types (LPM tries) keep none: vfp-maptool walks those.
 */
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* Only the fields read here; CO-RE finds them in the running kernel's BTF. */
struct bpf_map {
	__u32 id;
} __attribute__((preserve_access_index));

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__bpf_map {
	struct bpf_iter_meta *meta;
	struct bpf_map *map;
} __attribute__((preserve_access_index));

extern __s64 bpf_map_sum_elem_count(const struct bpf_map *map) __ksym;

/* One record per map, as vfp_maptool.c reads it. */
struct map_count {
	__u32 id;
	__u32 pad;
	__s64 count;
};

SEC("iter/bpf_map")
int map_count(struct bpf_iter__bpf_map *ctx)
{
	struct bpf_map *map = ctx->map;
	struct map_count rec = {};

	if (!map)
		return 0;
	rec.id = map->id;
	rec.count = bpf_map_sum_elem_count(map);
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
