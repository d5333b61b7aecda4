// SPDX-License-Identifier: GPL-2.0
/*
 * vfp-maptool: bulk access to one pinned map, for vosctl and the benchmarks.
 * Records are raw key||value bytes in the layouts of vfp_maps.h.
 *
 *   vfp-maptool info   <pin>   {"id":..,"type":..,"key_size":..,"value_size":..,"max_entries":..}
 *   vfp-maptool update <pin>   stdin: key||value records; one BPF_MAP_UPDATE_BATCH per 64k
 *   vfp-maptool delete <pin>   stdin: keys; absent keys are counted, not errors
 *   vfp-maptool dump   <pin>   stdout: key||value records
 *   vfp-maptool count  <pin>   the number of entries, for the exporter: a hash map's own
 *                              count (map_count.bpf.o, an iterator over bpf_map_sum_elem_count,
 *                              Linux >= 6.6), else a walk with batch lookups whose records
 *                              stay here; "N kernel" or "N walked" says which
 *   vfp-maptool serve          the same four as requests on stdin, for a long-lived
 *                              caller (vosctl consume) that cannot pay a process per batch
 *
 * update/delete print "applied N" / "deleted N absent M" on stdout.
 * Exit: 0 ok, 2 usage, 3 map not found, 4 map full (after applying what fit), 1 other.
 *
 * serve: each request is one line "<op> <nbytes> <pin>\n" followed by nbytes of
 * records (update) or keys (delete); info and dump send 0. Each answer is one line:
 *   ok applied N | ok deleted N absent M | ok <json> | ok <nbytes>\n<records>
 * and "lookup" (keys in, one byte per key out: 1 present, 0 absent) answers like dump.
 *   full applied N max M | nomap <why> | err <why>
 * The pin is opened for every request, so a map that was removed and created
 * again is the one written, never a stale descriptor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define CHUNK 65536
#define MAX_REQUEST (64u << 20) /* serve: one request's payload; vosctl sends far less */
#ifndef ENOTSUPP
#define ENOTSUPP 524 /* kernel-internal "operation not supported", seen from bpf() */
#endif

static char why[256]; /* the last failure, for the caller's message */

static size_t read_full(void *buf, size_t len)
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

/* Open a pinned map; 0 or -1 with why set. */
static int open_map(const char *pin, int *fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	*fd = bpf_obj_get(pin);
	if (*fd < 0) {
		snprintf(why, sizeof(why), "cannot open %s: %s", pin, strerror(errno));
		return -1;
	}
	if (bpf_obj_get_info_by_fd(*fd, info, &len)) {
		snprintf(why, sizeof(why), "%s is not a map: %s", pin, strerror(errno));
		close(*fd);
		return -1;
	}
	return 0;
}

enum { DONE = 0, FAILED = 1, FULL = 4 };

/*
 * Write n key||value records (n <= CHUNK). *batch_ok starts at 1 and drops to
 * 0 for map types without batch ops (LPM tries): one syscall per record then.
 */
static int update_chunk(int fd, const struct bpf_map_info *info, const char *in, long n,
			char *keys, char *vals, int *batch_ok, unsigned long long *applied)
{
	size_t ks = info->key_size, vs = info->value_size, rec = ks + vs;

	for (long i = 0; i < n; i++) {
		memcpy(keys + i * ks, in + i * rec, ks);
		memcpy(vals + i * vs, in + i * rec + ks, vs);
	}
	if (*batch_ok) {
		__u32 count = n;
		int err = bpf_map_update_batch(fd, keys, vals, &count, NULL) ? -errno : 0;

		if (!err) {
			*applied += n;
			return DONE;
		}
		if (err == -E2BIG || err == -ENOSPC) {
			/* count holds the records the kernel applied before it ran out of room */
			*applied += count;
			return FULL;
		}
		if (err != -EINVAL && err != -ENOTSUPP && err != -EOPNOTSUPP) {
			*applied += count;
			snprintf(why, sizeof(why), "batch update: %s", strerror(-err));
			return FAILED;
		}
		*batch_ok = 0;
	}
	for (long i = 0; i < n; i++) {
		if (bpf_map_update_elem(fd, keys + i * ks, vals + i * vs, BPF_ANY)) {
			if (errno == E2BIG || errno == ENOSPC || errno == ENOMEM)
				return FULL;
			snprintf(why, sizeof(why), "update: %s", strerror(errno));
			return FAILED;
		}
		(*applied)++;
	}
	return DONE;
}

static int delete_chunk(int fd, const struct bpf_map_info *info, const char *keys, long n,
			unsigned long long *deleted, unsigned long long *absent)
{
	for (long i = 0; i < n; i++) {
		if (!bpf_map_delete_elem(fd, keys + i * info->key_size))
			(*deleted)++;
		else if (errno == ENOENT)
			(*absent)++;
		else {
			snprintf(why, sizeof(why), "delete: %s", strerror(errno));
			return FAILED;
		}
	}
	return DONE;
}

/* A growable output buffer, so serve can send a dump's length before its bytes. */
struct sink {
	char *buf;
	size_t len, cap;
	int stream; /* 1: write straight to stdout */
	int count_only; /* 1: only add up the bytes (count: nothing crosses the pipe) */
};

static int sink_put(struct sink *s, const void *data, size_t len)
{
	if (s->count_only) {
		s->len += len;
		return 0;
	}
	if (s->stream)
		return write_full(data, len);
	if (s->len + len > s->cap) {
		size_t cap = s->cap ? s->cap : 65536;
		char *grown;

		while (cap < s->len + len)
			cap *= 2;
		grown = realloc(s->buf, cap);
		if (!grown)
			return -1;
		s->buf = grown;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	return 0;
}

static int dump_map(int fd, const struct bpf_map_info *info, struct sink *out)
{
	size_t ks = info->key_size, vs = info->value_size, rec = ks + vs;
	char *keys = malloc(ks * CHUNK), *vals = malloc(vs * CHUNK), *recs = malloc(rec * CHUNK);
	char *key = malloc(ks), *next = malloc(ks);
	/*
	 * The batch token: a bucket number for a hash map, but a whole key for
	 * maps on the kernel's generic batch code (an LPM trie): sized for both,
	 * or a 20-byte IPv6 LPM key overruns it.
	 */
	char *batch = calloc(1, ks > 8 ? ks : 8);
	int first = 1, ret = FAILED;

	if (!keys || !vals || !recs || !key || !next || !batch)
		goto out;
	for (;;) {
		__u32 count = CHUNK;
		int err = bpf_map_lookup_batch(fd, first ? NULL : batch, batch, keys, vals, &count, NULL);

		if (err && errno != ENOENT) {
			if (!first || (errno != EINVAL && errno != ENOTSUPP && errno != EOPNOTSUPP)) {
				snprintf(why, sizeof(why), "dump: %s", strerror(errno));
				goto out;
			}
			break; /* no batch lookup for this map type: walk the keys below */
		}
		for (__u32 i = 0; i < count; i++) {
			memcpy(recs + i * rec, keys + i * ks, ks);
			memcpy(recs + i * rec + ks, vals + i * vs, vs);
		}
		if (sink_put(out, recs, count * rec))
			goto out;
		if (err) { /* ENOENT: that was the last batch */
			ret = DONE;
			goto out;
		}
		first = 0;
	}
	ret = DONE;
	if (bpf_map_get_next_key(fd, NULL, next))
		goto out;
	do {
		memcpy(key, next, ks);
		if (bpf_map_lookup_elem(fd, key, vals))
			continue; /* deleted while we walked */
		memcpy(recs, key, ks);
		memcpy(recs + ks, vals, vs);
		if (sink_put(out, recs, rec)) {
			ret = FAILED;
			goto out;
		}
	} while (!bpf_map_get_next_key(fd, key, next));
out:
	free(keys);
	free(vals);
	free(recs);
	free(key);
	free(next);
	free(batch);
	return ret;
}

/*
 * The kernel's element count of map `id`, read through map_count.bpf.o (next
 * to this binary), loaded once per process. 0 with *count set, or -1 when the
 * kernel or the object cannot (older kernel: the caller walks the map).
 */
static int kernel_count(__u32 id, long long *count)
{
	static struct bpf_link *link;
	static int state; /* 0 not tried, 1 loaded, -1 unavailable */
	struct { __u32 id, pad; __s64 count; } rec;
	char path[4096], buf[4096];
	size_t have = 0;
	int fd, ret = -1;

	if (state == 0) {
		ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
		struct bpf_object *obj;
		struct bpf_program *prog;
		char *slash;

		state = -1;
		if (n <= 0)
			return -1;
		path[n] = 0;
		slash = strrchr(path, '/');
		if (!slash)
			return -1;
		strcpy(slash, "/map_count.bpf.o");
		libbpf_set_print(NULL); /* unavailable is an answer, not an error to print */
		obj = bpf_object__open_file(path, NULL);
		if (!obj || bpf_object__load(obj))
			return -1;
		prog = bpf_object__find_program_by_name(obj, "map_count");
		link = prog ? bpf_program__attach_iter(prog, NULL) : NULL;
		if (!link)
			return -1;
		state = 1;
	}
	if (state < 0 || (fd = bpf_iter_create(bpf_link__fd(link))) < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += n;
		size_t used = 0;

		for (; used + sizeof(rec) <= have; used += sizeof(rec)) {
			memcpy(&rec, buf + used, sizeof(rec));
			if (rec.id == id) {
				*count = rec.count;
				ret = 0;
			}
		}
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	close(fd);
	return ret;
}

/* Entries in the map: the kernel's count for hash maps, else a walk. */
static int count_map(int fd, const struct bpf_map_info *info, unsigned long long *n, const char **how)
{
	long long kc;
	struct sink out = { .count_only = 1 };
	int ret;

	if ((info->type == BPF_MAP_TYPE_HASH || info->type == BPF_MAP_TYPE_PERCPU_HASH) && !kernel_count(info->id, &kc) && kc >= 0) {
		*n = kc;
		*how = "kernel";
		return DONE;
	}
	ret = dump_map(fd, info, &out);
	*n = out.len / (info->key_size + info->value_size);
	*how = "walked";
	return ret;
}

static void print_info(const struct bpf_map_info *info)
{
	printf("{\"id\":%u,\"type\":%u,\"key_size\":%u,\"value_size\":%u,\"max_entries\":%u,\"name\":\"%s\"}",
	       info->id, info->type, info->key_size, info->value_size, info->max_entries, info->name);
}

/* One-shot mode: stream stdin through the chunk functions. */
static int run_once(const char *cmd, int fd, const struct bpf_map_info *info)
{
	size_t ks = info->key_size, vs = info->value_size, rec = ks + vs;
	unsigned long long a = 0, b = 0;
	int batch_ok = 1, ret = DONE;
	char *in = malloc(rec * CHUNK), *keys = malloc(ks * CHUNK), *vals = malloc(vs * CHUNK);
	size_t got;

	if (!in || !keys || !vals)
		return FAILED;
	if (!strcmp(cmd, "info")) {
		print_info(info);
		putchar('\n');
		return DONE;
	}
	if (!strcmp(cmd, "count")) {
		const char *how;

		ret = count_map(fd, info, &a, &how);
		if (ret)
			fprintf(stderr, "vfp-maptool: %s\n", why);
		else
			printf("%llu %s\n", a, how);
		return ret;
	}
	if (!strcmp(cmd, "dump")) {
		struct sink out = { .stream = 1 };

		ret = dump_map(fd, info, &out);
		if (ret)
			fprintf(stderr, "vfp-maptool: %s\n", why);
		return ret;
	}
	if (strcmp(cmd, "update") && strcmp(cmd, "delete"))
		return 2;
	size_t unit = !strcmp(cmd, "update") ? rec : ks;

	while (ret == DONE && (got = read_full(in, unit * CHUNK)) > 0) {
		if (got % unit) {
			fprintf(stderr, "vfp-maptool: input ends inside a record (%zu bytes, records of %zu)\n", got, unit);
			return 2;
		}
		ret = unit == rec ? update_chunk(fd, info, in, got / rec, keys, vals, &batch_ok, &a)
				  : delete_chunk(fd, info, in, got / ks, &a, &b);
	}
	if (unit == rec)
		printf("applied %llu\n", a);
	else
		printf("deleted %llu absent %llu\n", a, b);
	if (ret == FULL)
		fprintf(stderr, "vfp-maptool: map full (%u entries)\n", info->max_entries);
	else if (ret)
		fprintf(stderr, "vfp-maptool: %s\n", why);
	return ret;
}

/* Serve mode: one request after another until stdin closes. */
static int serve(void)
{
	char line[4200], *payload = NULL;
	size_t cap = 0;

	setvbuf(stdin, NULL, _IONBF, 0); /* payload bytes are read with read(2) */
	for (;;) {
		char op[16], pin[4096];
		unsigned long nbytes;
		size_t len = 0;
		char c;
		ssize_t r;

		/* read the request line byte by byte: stdio must not buffer past it */
		while (len < sizeof(line) - 1 && (r = read(0, &c, 1)) == 1 && c != '\n')
			line[len++] = c;
		if (len == 0 && (r <= 0))
			return 0;
		line[len] = 0;
		if (sscanf(line, "%15s %lu %4095[^\n]", op, &nbytes, pin) != 3 || nbytes > MAX_REQUEST) {
			fprintf(stderr, "vfp-maptool serve: bad request '%.80s'\n", line);
			return 2;
		}
		if (nbytes > cap) {
			free(payload);
			cap = nbytes;
			payload = malloc(cap);
			if (!payload)
				return FAILED;
		}
		if (read_full(payload, nbytes) != nbytes)
			return 2;

		struct bpf_map_info info;
		int fd;

		if (open_map(pin, &fd, &info)) {
			printf("nomap %s\n", why);
			fflush(stdout);
			continue;
		}
		size_t ks = info.key_size, rec = ks + info.value_size;
		unsigned long long a = 0, b = 0;
		int ret = DONE, batch_ok = 1;

		if (!strcmp(op, "info")) {
			printf("ok ");
			print_info(&info);
			putchar('\n');
		} else if (!strcmp(op, "dump")) {
			struct sink out = {};

			ret = dump_map(fd, &info, &out);
			if (!ret) {
				printf("ok %zu\n", out.len);
				fflush(stdout);
				write_full(out.buf, out.len);
			}
			free(out.buf);
		} else if (!strcmp(op, "count")) {
			const char *how;

			ret = count_map(fd, &info, &a, &how);
			if (!ret)
				printf("ok count %llu %s\n", a, how);
		} else if (!strcmp(op, "update") && nbytes % rec == 0) {
			char *keys = malloc(ks * CHUNK), *vals = malloc(info.value_size * CHUNK);

			for (size_t at = 0; ret == DONE && at < nbytes; at += rec * CHUNK) {
				size_t n = (nbytes - at) / rec < CHUNK ? (nbytes - at) / rec : CHUNK;

				ret = keys && vals ? update_chunk(fd, &info, payload + at, n, keys, vals, &batch_ok, &a) : FAILED;
			}
			free(keys);
			free(vals);
			if (ret == FULL)
				printf("full applied %llu max %u\n", a, info.max_entries);
			else if (!ret)
				printf("ok applied %llu\n", a);
		} else if (!strcmp(op, "lookup") && nbytes % ks == 0) {
			/* one byte per key: 1 present, 0 absent (the benchmarks poll with it) */
			size_t n = nbytes / ks;
			char *found = malloc(n ? n : 1), *val = malloc(info.value_size);

			for (size_t i = 0; found && val && i < n; i++)
				found[i] = !bpf_map_lookup_elem(fd, payload + i * ks, val);
			if (found && val) {
				printf("ok %zu\n", n);
				fflush(stdout);
				write_full(found, n);
			} else {
				snprintf(why, sizeof(why), "lookup: out of memory");
				ret = FAILED;
			}
			free(found);
			free(val);
		} else if (!strcmp(op, "delete") && nbytes % ks == 0) {
			ret = delete_chunk(fd, &info, payload, nbytes / ks, &a, &b);
			if (!ret)
				printf("ok deleted %llu absent %llu\n", a, b);
		} else {
			snprintf(why, sizeof(why), "bad request: %.15s of %lu bytes on %.160s", op, nbytes, pin);
			ret = FAILED;
		}
		if (ret == FAILED)
			printf("err %s\n", why);
		fflush(stdout);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	struct bpf_map_info info;
	int fd;

	if (argc == 2 && !strcmp(argv[1], "serve"))
		return serve();
	if (argc != 3) {
		fprintf(stderr, "usage: vfp-maptool info|update|delete|dump|count <pinned map> | vfp-maptool serve\n");
		return 2;
	}
	if (open_map(argv[2], &fd, &info)) {
		fprintf(stderr, "vfp-maptool: %s\n", why);
		return 3;
	}
	int ret = run_once(argv[1], fd, &info);

	if (ret == 2)
		fprintf(stderr, "usage: vfp-maptool info|update|delete|dump|count <pinned map> | vfp-maptool serve\n");
	return ret;
}
