// SPDX-License-Identifier: GPL-2.0
/*
 * vfp-maptool: bulk access to one pinned map, for vosctl and the benchmarks.
 * Records are raw key||value bytes in the layouts of vfp_maps.h.
 *
 *   vfp-maptool info   <pin>   {"id":..,"type":..,"key_size":..,"value_size":..,"max_entries":..}
 *   vfp-maptool update <pin>   stdin: key||value records; one BPF_MAP_UPDATE_BATCH per 64k
 *   vfp-maptool delete <pin>   stdin: keys; absent keys are counted, not errors
 *   vfp-maptool dump   <pin>   stdout: key||value records
 *
 * update/delete print "applied N" / "deleted N absent M" on stdout.
 * Exit: 0 ok, 2 usage, 3 map not found, 4 map full (after applying what fit), 1 other.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#define CHUNK 65536
#ifndef ENOTSUPP
#define ENOTSUPP 524 /* kernel-internal "operation not supported", seen from bpf() */
#endif

static int read_full(void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(0, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

static int write_full(const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(1, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

/* Read up to CHUNK records; returns the count, or -1 on a torn record. */
static long read_records(char *buf, size_t rec)
{
	size_t got = read_full(buf, rec * CHUNK);

	if (got % rec) {
		fprintf(stderr, "vfp-maptool: input ends inside a record (%zu bytes, records of %zu)\n", got, rec);
		return -1;
	}
	return got / rec;
}

static int cmd_update(int fd, const struct bpf_map_info *info)
{
	size_t ks = info->key_size, vs = info->value_size, rec = ks + vs;
	char *in = malloc(rec * CHUNK), *keys = malloc(ks * CHUNK), *vals = malloc(vs * CHUNK);
	unsigned long long applied = 0;
	int batch_ok = 1, full = 0;
	long n;

	if (!in || !keys || !vals)
		return 1;
	while (!full && (n = read_records(in, rec)) > 0) {
		for (long i = 0; i < n; i++) {
			memcpy(keys + i * ks, in + i * rec, ks);
			memcpy(vals + i * vs, in + i * rec + ks, vs);
		}
		if (batch_ok) {
			__u32 count = n;
			int err = bpf_map_update_batch(fd, keys, vals, &count, NULL);

			if (!err) {
				applied += n;
				continue;
			}
			err = -errno;
			if (err == -E2BIG || err == -ENOSPC) {
				/* count holds the records the kernel applied before it ran out of room */
				applied += count;
				full = 1;
				break;
			}
			if (err != -EINVAL && err != -ENOTSUPP && err != -EOPNOTSUPP) {
				fprintf(stderr, "vfp-maptool: batch update: %s\n", strerror(-err));
				printf("applied %llu\n", applied + count);
				return 1;
			}
			batch_ok = 0; /* LPM tries have no batch ops: one syscall per record */
		}
		for (long i = 0; i < n; i++) {
			if (bpf_map_update_elem(fd, keys + i * ks, vals + i * vs, BPF_ANY)) {
				if (errno == E2BIG || errno == ENOSPC || errno == ENOMEM) {
					full = 1;
					break;
				}
				fprintf(stderr, "vfp-maptool: update: %s\n", strerror(errno));
				printf("applied %llu\n", applied);
				return 1;
			}
			applied++;
		}
	}
	if (n < 0)
		return 2;
	printf("applied %llu\n", applied);
	if (full) {
		fprintf(stderr, "vfp-maptool: map full (%u entries)\n", info->max_entries);
		return 4;
	}
	return 0;
}

static int cmd_delete(int fd, const struct bpf_map_info *info)
{
	size_t ks = info->key_size;
	char *keys = malloc(ks * CHUNK);
	unsigned long long deleted = 0, absent = 0;
	long n;

	if (!keys)
		return 1;
	while ((n = read_records(keys, ks)) > 0) {
		for (long i = 0; i < n; i++) {
			if (!bpf_map_delete_elem(fd, keys + i * ks))
				deleted++;
			else if (errno == ENOENT)
				absent++;
			else {
				fprintf(stderr, "vfp-maptool: delete: %s\n", strerror(errno));
				return 1;
			}
		}
	}
	printf("deleted %llu absent %llu\n", deleted, absent);
	return n < 0 ? 2 : 0;
}

static int cmd_dump(int fd, const struct bpf_map_info *info)
{
	size_t ks = info->key_size, vs = info->value_size, rec = ks + vs;
	char *keys = malloc(ks * CHUNK), *vals = malloc(vs * CHUNK), *out = malloc(rec * CHUNK);
	char *key = malloc(ks), *next = malloc(ks);
	__u64 batch = 0;
	int first = 1;

	if (!keys || !vals || !out || !key || !next)
		return 1;
	for (;;) {
		__u32 count = CHUNK;
		int err = bpf_map_lookup_batch(fd, first ? NULL : &batch, &batch, keys, vals, &count, NULL);

		if (err && errno != ENOENT) {
			if (!first || (errno != EINVAL && errno != ENOTSUPP && errno != EOPNOTSUPP)) {
				fprintf(stderr, "vfp-maptool: dump: %s\n", strerror(errno));
				return 1;
			}
			break; /* no batch lookup for this map type: walk the keys below */
		}
		for (__u32 i = 0; i < count; i++) {
			memcpy(out + i * rec, keys + i * ks, ks);
			memcpy(out + i * rec + ks, vals + i * vs, vs);
		}
		if (write_full(out, count * rec))
			return 1;
		if (err) /* ENOENT: that was the last batch */
			return 0;
		first = 0;
	}
	if (bpf_map_get_next_key(fd, NULL, next))
		return 0;
	do {
		memcpy(key, next, ks);
		if (bpf_map_lookup_elem(fd, key, vals))
			continue; /* deleted while we walked */
		memcpy(out, key, ks);
		memcpy(out + ks, vals, vs);
		if (write_full(out, rec))
			return 1;
	} while (!bpf_map_get_next_key(fd, key, next));
	return 0;
}

int main(int argc, char **argv)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: vfp-maptool info|update|delete|dump <pinned map>\n");
		return 2;
	}
	fd = bpf_obj_get(argv[2]);
	if (fd < 0) {
		fprintf(stderr, "vfp-maptool: cannot open %s: %s\n", argv[2], strerror(errno));
		return 3;
	}
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		fprintf(stderr, "vfp-maptool: %s is not a map: %s\n", argv[2], strerror(errno));
		return 3;
	}
	if (!strcmp(argv[1], "info")) {
		printf("{\"id\":%u,\"type\":%u,\"key_size\":%u,\"value_size\":%u,\"max_entries\":%u,\"name\":\"%s\"}\n",
		       info.id, info.type, info.key_size, info.value_size, info.max_entries, info.name);
		return 0;
	}
	if (!strcmp(argv[1], "update"))
		return cmd_update(fd, &info);
	if (!strcmp(argv[1], "delete"))
		return cmd_delete(fd, &info);
	if (!strcmp(argv[1], "dump"))
		return cmd_dump(fd, &info);
	fprintf(stderr, "usage: vfp-maptool info|update|delete|dump <pinned map>\n");
	return 2;
}
