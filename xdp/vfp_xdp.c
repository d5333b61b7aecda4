// SPDX-License-Identifier: GPL-2.0
/*
 * vfp-xdp: attach vos-fastpath through libxdp's multi-program dispatcher, so
 * the NIC is shared with xdp-filter and any other libxdp program, and detach
 * it without touching them. Used by scripts/load.sh, unload.sh and vosctl doctor.
 *
 *   vfp-xdp attach <iface> <obj> <pin-dir> <native|skb> <priority>
 *       Opens <obj>, hands it the maps pinned in <pin-dir> (bpf_map__reuse_fd,
 *       so a reload or upgrade keeps every entry), sets the run priority
 *       (lower runs first) and chain-call on XDP_PASS, attaches it, then
 *       detaches any older vos-fastpath program on that dispatcher and pins
 *       the new one as <pin-dir>/prog. Prints the new program's id and
 *       "dispatcher", or "alone" where the kernel runs no dispatcher.
 *   vfp-xdp detach <iface> [<pin-dir>]
 *       Removes only the vos-fastpath programs from the interface's dispatcher
 *       (or a pre-dispatcher vos-fastpath attached with ip link). Prints how many.
 *       With <pin-dir>, only those using that folder's maps; another
 *       instance's program there: exit 3 naming its folder.
 *   vfp-xdp probe
 *       Prints "dispatcher yes" or "dispatcher no": the dispatcher needs the
 *       kernel to load freplace (BPF_PROG_TYPE_EXT) programs; without them
 *       libxdp attaches one program alone, and an interface runs one program.
 *   vfp-xdp list [<iface>]
 *       A JSON array, one object per interface running XDP:
 *       {"iface","ifindex","mode","libxdp","dispatcher_id","programs":[{"id","name","priority","chain_call_actions":[..]}]}
 *
 * An interface running a program attached without libxdp (ip link, a
 * program of its own) is never replaced: attach exits 3 naming it.
 * Exit: 0 ok, 2 usage, 3 the interface or host is not ready, 1 other.
 */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#define PROG_NAME "vfp_xdp" /* the program's function name, as the kernel shows it */

static const char *action_names[] = { "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT" };

static int usage(void)
{
	fprintf(stderr, "usage: vfp-xdp attach <iface> <obj> <pin-dir> <native|skb> <priority>\n"
			"       vfp-xdp detach <iface> [<pin-dir>]\n"
			"       vfp-xdp probe\n"
			"       vfp-xdp list [<iface>]\n");
	return 2;
}

static const char *mode_name(enum xdp_attach_mode m)
{
	switch (m) {
	case XDP_MODE_NATIVE: return "native";
	case XDP_MODE_SKB: return "skb";
	case XDP_MODE_HW: return "offload";
	default: return "none";
	}
}

static int ifindex_of(const char *iface)
{
	int ifindex = if_nametoindex(iface);

	if (!ifindex)
		fprintf(stderr, "vfp-xdp: no interface '%s'\n", iface);
	return ifindex;
}

/* NULL when nothing runs on the interface. */
static struct xdp_multiprog *multiprog_of(int ifindex)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);

	if (libxdp_get_error(mp))
		return NULL;
	if (!xdp_multiprog__main_prog(mp) && !xdp_multiprog__hw_prog(mp)) {
		xdp_multiprog__close(mp);
		return NULL;
	}
	return mp;
}

/*
 * The command that removes another program: its owner's (xdp-filter names its
 * programs xdpfilt_*; xdp-loader's dispatcher), else ip link's flag for the
 * mode it runs in: plain `xdp off` leaves a generic-mode program (ip-link(8)).
 * Same rule as lib/doctor/judge.ts detachCommand.
 */
static void detach_command(const char *iface, enum xdp_attach_mode m, const char *name, char *out, size_t size)
{
	if (!strncmp(name, "xdpfilt_", 8))
		snprintf(out, size, "xdp-filter unload %s", iface);
	else if (!strcmp(name, "xdp_dispatcher"))
		snprintf(out, size, "xdp-loader unload %s --all", iface);
	else
		snprintf(out, size, "ip link set dev %s %s off", iface,
			 m == XDP_MODE_SKB ? "xdpgeneric" : m == XDP_MODE_NATIVE ? "xdpdrv" : m == XDP_MODE_HW ? "xdpoffload" : "xdp");
}

/* libxdp needs BPF_PROG_TYPE_EXT for its dispatcher; a locked-down kernel may refuse it. */
static int dispatcher_supported(void)
{
	return libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_EXT, NULL) == 1;
}

/*
 * The pin folder this run works on: a program is ours when it is named
 * vfp_xdp AND uses this folder's maps (its map ids hold the id of the pinned
 * OWN_MAP). Another vos-fastpath instance (another pin folder) on the same
 * interface is then never replaced or removed. NULL (detach without a
 * folder, as before): any vfp_xdp program.
 */
static const char *pin_dir_g;
#define OWN_MAP "stats" /* every vos-fastpath program counts into it */

static __u32 map_id_of(const char *path)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path);

	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.id = 0;
	close(fd);
	return info.id;
}

/* 1 when program id uses the map with id map_id. */
static int prog_uses_map(__u32 id, __u32 map_id)
{
	__u32 ids[64], len, i;
	struct bpf_prog_info info = {};
	int fd = bpf_prog_get_fd_by_id(id), hit = 0;

	if (fd < 0)
		return 0;
	len = sizeof(info);
	info.nr_map_ids = 64;
	info.map_ids = (__u64)(unsigned long)ids;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		for (i = 0; i < info.nr_map_ids && i < 64; i++)
			hit |= ids[i] == map_id;
	close(fd);
	return hit;
}

static int is_vfp(const struct xdp_program *p)
{
	return p && !strcmp(xdp_program__name(p), PROG_NAME);
}

static int is_ours(const struct xdp_program *p)
{
	char path[PATH_MAX];

	if (!is_vfp(p))
		return 0;
	if (!pin_dir_g)
		return 1;
	snprintf(path, sizeof(path), "%s/" OWN_MAP, pin_dir_g);
	return prog_uses_map(xdp_program__id(p), map_id_of(path));
}

/*
 * The pin folder of another instance's program, if it pinned it as
 * <folder>/prog one or two levels below /sys/fs/bpf (where load.sh pins);
 * "" when not found.
 */
static void pin_dir_of(__u32 id, char *out, size_t size)
{
	char pattern[2][32] = { "/sys/fs/bpf/*/prog", "/sys/fs/bpf/*/*/prog" };
	int k;

	*out = 0;
	for (k = 0; k < 2 && !*out; k++) {
		glob_t g;
		size_t i;

		if (glob(pattern[k], 0, NULL, &g))
			continue;
		for (i = 0; i < g.gl_pathc && !*out; i++) {
			struct bpf_prog_info info = {};
			__u32 len = sizeof(info);
			int fd = bpf_obj_get(g.gl_pathv[i]);

			if (fd < 0)
				continue;
			if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.id == id) {
				snprintf(out, size, "%s", g.gl_pathv[i]);
				*strrchr(out, '/') = 0;
			}
			close(fd);
		}
		globfree(&g);
	}
}

/* Exit 3 naming another vos-fastpath instance's program on iface (not this pin folder's). */
static int refuse_other_instance(const char *iface, const struct xdp_program *p, enum xdp_attach_mode m)
{
	char dir[PATH_MAX], off[96];

	pin_dir_of(xdp_program__id(p), dir, sizeof(dir));
	fprintf(stderr, "vfp-xdp: %s runs another vos-fastpath instance (program %u, maps %s%s), not the one of %s; it is not replaced.\n",
		iface, xdp_program__id(p), *dir ? "pinned in " : "not in ", *dir ? dir : pin_dir_g, pin_dir_g);
	if (*dir) {
		fprintf(stderr, "  Detach it with its own pin folder (vosctl detach %s --pin-dir %s), or use that folder.\n", iface, dir);
	} else {
		/* Its pins are gone (a folder removed by hand): only the interface still holds it. */
		detach_command(iface, m, PROG_NAME, off, sizeof(off));
		fprintf(stderr, "  Its pin folder is not found below /sys/fs/bpf; if it is a leftover, detach it (%s).\n", off);
	}
	return 3;
}

static void print_prog(const struct xdp_program *p, int first)
{
	int a, comma = 0;

	printf("%s{\"id\":%u,\"name\":\"%s\",\"priority\":%u,\"chain_call_actions\":[", first ? "" : ",",
	       xdp_program__id(p), xdp_program__name(p), xdp_program__run_prio(p));
	for (a = 0; a < 5; a++)
		if (xdp_program__chain_call_enabled(p, a)) {
			printf("%s\"%s\"", comma ? "," : "", action_names[a]);
			comma = 1;
		}
	printf("]}");
}

/* Interface names may hold any byte but '/', NUL and whitespace. */
static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_iface(const char *name, int ifindex, struct xdp_multiprog *mp, int first)
{
	struct xdp_program *main_prog = xdp_multiprog__main_prog(mp), *p;
	int legacy = xdp_multiprog__is_legacy(mp), n = 0;

	printf("%s{\"iface\":", first ? "" : ",");
	print_json_string(name);
	printf(",\"ifindex\":%d,\"mode\":\"%s\",\"libxdp\":%s,\"dispatcher_id\":%u,\"programs\":[", ifindex,
	       mode_name(xdp_multiprog__attach_mode(mp)), legacy ? "false" : "true", legacy || !main_prog ? 0 : xdp_program__id(main_prog));
	if (legacy) {
		if (main_prog)
			print_prog(main_prog, n++ == 0);
	} else {
		for (p = xdp_multiprog__next_prog(NULL, mp); p; p = xdp_multiprog__next_prog(p, mp))
			print_prog(p, n++ == 0);
	}
	if (xdp_multiprog__hw_prog(mp))
		print_prog(xdp_multiprog__hw_prog(mp), n++ == 0);
	printf("]}");
}

static int cmd_list(const char *only)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	int first = 1;

	if (!ifs) {
		perror("vfp-xdp: if_nameindex");
		return 1;
	}
	printf("[");
	for (i = ifs; i->if_index; i++) {
		struct xdp_multiprog *mp;

		if (only && strcmp(only, i->if_name))
			continue;
		mp = multiprog_of(i->if_index);
		if (!mp)
			continue;
		print_iface(i->if_name, i->if_index, mp, first);
		first = 0;
		xdp_multiprog__close(mp);
	}
	printf("]\n");
	if_freenameindex(ifs);
	return 0;
}

/* Detach our programs from the dispatcher on ifindex, except the one with id keep. */
static int detach_ours(int ifindex, __u32 keep, int *count)
{
	struct xdp_multiprog *mp = multiprog_of(ifindex);
	struct xdp_program *p, *old[64];
	enum xdp_attach_mode mode;
	int n = 0, i, err = 0;

	*count = 0;
	if (!mp)
		return 0;
	mode = xdp_multiprog__attach_mode(mp);
	if (xdp_multiprog__is_legacy(mp)) {
		/* vos-fastpath before libxdp attached with ip link: ours to remove. */
		if (is_ours(xdp_multiprog__main_prog(mp)) && xdp_program__id(xdp_multiprog__main_prog(mp)) != keep) {
			err = xdp_multiprog__detach(mp);
			*count = !err;
		}
		xdp_multiprog__close(mp);
		return err;
	}
	for (p = xdp_multiprog__next_prog(NULL, mp); p && n < 64; p = xdp_multiprog__next_prog(p, mp))
		if (is_ours(p) && xdp_program__id(p) != keep)
			old[n++] = p;
	for (i = 0; i < n && !err; i++) {
		err = xdp_program__detach(old[i], ifindex, mode, 0);
		if (!err)
			(*count)++;
	}
	xdp_multiprog__close(mp);
	return err;
}

static int only_ours(const struct xdp_multiprog *mp)
{
	struct xdp_program *p;

	for (p = xdp_multiprog__next_prog(NULL, mp); p; p = xdp_multiprog__next_prog(p, mp))
		if (!is_ours(p))
			return 0;
	return 1;
}

static int was_there(const __u32 *ids, int n, __u32 id)
{
	while (n-- > 0)
		if (ids[n] == id)
			return 1;
	return 0;
}

/* Every map of the object but libbpf's own (.rodata, .bss) takes the pinned one of the same name. */
static int reuse_pinned_maps(struct bpf_object *obj, const char *pin_dir)
{
	struct bpf_map *map;
	char path[PATH_MAX];

	bpf_object__for_each_map(map, obj) {
		int fd, err;

		if (bpf_map__is_internal(map))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, bpf_map__name(map));
		fd = bpf_obj_get(path);
		if (fd < 0) {
			fprintf(stderr, "vfp-xdp: no pinned map %s: %s\n", path, strerror(errno));
			return -1;
		}
		err = bpf_map__reuse_fd(map, fd);
		close(fd);
		if (err) {
			fprintf(stderr, "vfp-xdp: cannot reuse %s: %s\n", path, strerror(-err));
			return -1;
		}
	}
	return 0;
}

static int cmd_attach(const char *iface, const char *obj_path, const char *pin_dir, const char *mode_s, const char *prio_s)
{
	enum xdp_attach_mode mode;
	struct xdp_multiprog *mp;
	struct xdp_program *prog, *p;
	char *end, path[PATH_MAX], msg[256];
	long prio = strtol(prio_s, &end, 10);
	int ifindex, err, removed = 0, fd = -1, n_old = 0, replace_fd = -1, alone;
	__u32 id = 0, old_ids[64];

	if (!strcmp(mode_s, "native"))
		mode = XDP_MODE_NATIVE;
	else if (!strcmp(mode_s, "skb"))
		mode = XDP_MODE_SKB;
	else
		return usage();
	if (*end || end == prio_s || prio < 1 || prio > 999) {
		fprintf(stderr, "vfp-xdp: bad priority '%s': 1 to 999 (lower runs first)\n", prio_s);
		return 2;
	}
	ifindex = ifindex_of(iface);
	if (!ifindex)
		return 2;
	pin_dir_g = pin_dir;

	mp = multiprog_of(ifindex);
	if (mp && xdp_multiprog__is_legacy(mp)) {
		struct xdp_program *other = xdp_multiprog__main_prog(mp);

		if (is_vfp(other) && !is_ours(other)) {
			err = refuse_other_instance(iface, other, xdp_multiprog__attach_mode(mp));
			xdp_multiprog__close(mp);
			return err;
		}
		if (!is_ours(other)) {
			char off[96];

			detach_command(iface, xdp_multiprog__attach_mode(mp), other ? xdp_program__name(other) : "", off, sizeof(off));
			fprintf(stderr, "vfp-xdp: %s runs XDP program %u (%s), attached without libxdp's dispatcher; it is not replaced.\n",
				iface, other ? xdp_program__id(other) : 0, other ? xdp_program__name(other) : "?");
			if (dispatcher_supported())
				fprintf(stderr, "  Detach it (%s) and attach it again with xdp-loader (xdp-loader load %s <obj>);\n"
						"  then vos-fastpath and it share the interface through the dispatcher.\n", off, iface);
			else
				fprintf(stderr, "  This kernel refuses freplace programs (BPF_PROG_TYPE_EXT), which libxdp's dispatcher needs,\n"
						"  so %s can run only one XDP program: detach that one (%s) to use vos-fastpath here.\n",
					iface, off);
			xdp_multiprog__close(mp);
			return 3;
		}
		if (!dispatcher_supported() && xdp_multiprog__attach_mode(mp) == mode) {
			/* Ours, alone, on a kernel without the dispatcher: swap it atomically (XDP_FLAGS_REPLACE). */
			replace_fd = bpf_prog_get_fd_by_id(xdp_program__id(other));
		} else {
			/* Ours from before the dispatcher, or in the other mode: it has to go first (a moment unprotected). */
			err = xdp_multiprog__detach(mp);
			if (err) {
				libxdp_strerror(err, msg, sizeof(msg));
				fprintf(stderr, "vfp-xdp: cannot remove the old vos-fastpath program from %s: %s\n", iface, msg);
				xdp_multiprog__close(mp);
				return 1;
			}
		}
	} else if (mp && xdp_multiprog__attach_mode(mp) != mode && only_ours(mp)) {
		/* Moving vos-fastpath alone to the other mode: its dispatcher goes first (a moment unprotected). */
		xdp_multiprog__close(mp);
		mp = NULL;
		err = detach_ours(ifindex, 0, &removed);
		if (err) {
			fprintf(stderr, "vfp-xdp: cannot remove vos-fastpath from %s to attach it in %s mode\n", iface, mode_s);
			return 1;
		}
	} else if (mp && xdp_multiprog__attach_mode(mp) != mode) {
		fprintf(stderr, "vfp-xdp: %s already has a dispatcher in %s mode; attach in that mode (--mode %s) or move the other programs\n",
			iface, mode_name(xdp_multiprog__attach_mode(mp)), mode_name(xdp_multiprog__attach_mode(mp)));
		xdp_multiprog__close(mp);
		return 3;
	}
	if (mp && !xdp_multiprog__is_legacy(mp))
		for (p = xdp_multiprog__next_prog(NULL, mp); p && n_old < 64; p = xdp_multiprog__next_prog(p, mp))
			if (is_ours(p))
				old_ids[n_old++] = xdp_program__id(p);
	if (mp)
		xdp_multiprog__close(mp);
	/* Without freplace, libxdp would try the dispatcher, log the kernel's refusal, then attach alone: go there directly. */
	if (!dispatcher_supported())
		setenv("LIBXDP_SKIP_DISPATCHER", "1", 1);

	prog = xdp_program__open_file(obj_path, "xdp", NULL);
	err = libxdp_get_error(prog);
	if (err) {
		libxdp_strerror(err, msg, sizeof(msg));
		fprintf(stderr, "vfp-xdp: cannot open %s: %s\n", obj_path, msg);
		return 1;
	}
	if (reuse_pinned_maps(xdp_program__bpf_obj(prog), pin_dir)) {
		xdp_program__close(prog);
		return 3;
	}
	xdp_program__set_run_prio(prog, prio);
	xdp_program__set_chain_call_enabled(prog, XDP_PASS, true);
	/* The old program keeps running until the new one is in: no moment without the blocklist. */
	if (replace_fd >= 0) {
		struct bpf_object *obj = xdp_program__bpf_obj(prog);
		LIBBPF_OPTS(bpf_xdp_attach_opts, xo, .old_prog_fd = replace_fd);

		err = bpf_object__load(obj);
		if (!err)
			err = bpf_xdp_attach(ifindex, bpf_program__fd(bpf_object__find_program_by_name(obj, PROG_NAME)),
					     XDP_FLAGS_REPLACE | (mode == XDP_MODE_NATIVE ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE), &xo);
		close(replace_fd);
	} else {
		err = xdp_program__attach(prog, ifindex, mode, 0);
	}
	if (err) {
		libxdp_strerror(err, msg, sizeof(msg));
		fprintf(stderr, "vfp-xdp: cannot attach to %s in %s mode: %s%s\n", iface, mode_s, msg,
			mode == XDP_MODE_NATIVE ? " (the driver may lack native XDP: try --mode skb)" : "");
		xdp_program__close(prog);
		return 1;
	}
	/* libxdp may load a copy as an extension of the dispatcher: find ours that was not there before. */
	id = 0;
	mp = multiprog_of(ifindex);
	if (mp && xdp_multiprog__is_legacy(mp))
		id = xdp_program__id(xdp_multiprog__main_prog(mp));
	for (p = mp && !xdp_multiprog__is_legacy(mp) ? xdp_multiprog__next_prog(NULL, mp) : NULL; p; p = xdp_multiprog__next_prog(p, mp))
		if (is_ours(p) && !was_there(old_ids, n_old, xdp_program__id(p)))
			id = xdp_program__id(p);
	alone = !mp || xdp_multiprog__is_legacy(mp);
	if (mp)
		xdp_multiprog__close(mp);
	fd = id ? bpf_prog_get_fd_by_id(id) : -1;
	err = detach_ours(ifindex, id, &removed);
	if (err)
		fprintf(stderr, "vfp-xdp: the new program is attached, but an older vos-fastpath program could not be removed from %s\n", iface);
	snprintf(path, sizeof(path), "%s/prog", pin_dir);
	unlink(path);
	if (fd < 0 || bpf_obj_pin(fd, path)) {
		fprintf(stderr, "vfp-xdp: attached, but cannot pin the program at %s: %s\n", path, strerror(errno));
		err = -1;
	}
	printf("%u %s\n", id, alone ? "alone" : "dispatcher");
	xdp_program__close(prog);
	return err ? 1 : 0;
}

static int cmd_detach(const char *iface, const char *pin_dir)
{
	int ifindex = ifindex_of(iface), count = 0, err;
	struct xdp_multiprog *mp;
	struct xdp_program *p;
	char msg[256];

	if (!ifindex)
		return 2;
	pin_dir_g = pin_dir;
	err = detach_ours(ifindex, 0, &count);
	if (!err && !count && pin_dir && (mp = multiprog_of(ifindex))) {
		/* Nothing of this folder's, but another instance's: say so rather than "not attached". */
		p = xdp_multiprog__is_legacy(mp) ? xdp_multiprog__main_prog(mp) : xdp_multiprog__next_prog(NULL, mp);
		for (; p; p = xdp_multiprog__is_legacy(mp) ? NULL : xdp_multiprog__next_prog(p, mp))
			if (is_vfp(p) && !is_ours(p)) {
				refuse_other_instance(iface, p, xdp_multiprog__attach_mode(mp));
				xdp_multiprog__close(mp);
				return 3;
			}
		xdp_multiprog__close(mp);
	}
	if (err) {
		libxdp_strerror(err, msg, sizeof(msg));
		fprintf(stderr, "vfp-xdp: cannot detach from %s: %s\n", iface, msg);
		return 1;
	}
	printf("%d\n", count);
	return 0;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	/* libbpf and libxdp narrate at info level; keep their warnings. */
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

int main(int argc, char **argv)
{
	libbpf_set_print(quiet);
	libxdp_set_print((libxdp_print_fn_t)quiet);
	if (argc == 7 && !strcmp(argv[1], "attach"))
		return cmd_attach(argv[2], argv[3], argv[4], argv[5], argv[6]);
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "detach"))
		return cmd_detach(argv[2], argc == 4 ? argv[3] : NULL);
	if (argc == 2 && !strcmp(argv[1], "probe")) {
		printf("dispatcher %s\n", dispatcher_supported() ? "yes" : "no");
		return 0;
	}
	if ((argc == 2 || argc == 3) && !strcmp(argv[1], "list"))
		return cmd_list(argc == 3 ? argv[2] : NULL);
	return usage();
}
