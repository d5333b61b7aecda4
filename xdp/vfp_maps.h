/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Map layouts and counter indexes shared by the XDP program (vos_fastpath.bpf.c),
 * the user-space helpers in xdp/ and, by value, the scripts and vosctl.
 * Change a layout here and everywhere that reads the maps must follow:
 * scripts/lib.sh and lib/maps/ encode these structs byte by byte.
 */
#ifndef VFP_MAPS_H
#define VFP_MAPS_H

#include <linux/types.h>

/* Pinned map names: the files in the pin folder are named exactly so. */
#define VFP_MAP_BLOCKED_IPS      "blocked_ips"       /* hash: __u32 saddr -> struct vfp_block */
#define VFP_MAP_BLOCKED_PREFIXES "blocked_prefixes"  /* lpm:  struct vfp_lpm_key -> struct vfp_block */
#define VFP_MAP_ALLOW_IPS        "allow_ips"         /* lpm:  struct vfp_lpm_key -> struct vfp_mark */
#define VFP_MAP_OPTIONS_ALLOW    "options_allow"     /* lpm:  struct vfp_lpm_key -> struct vfp_mark */
/* IPv6 twins: the same values, 128-bit keys (network byte order). */
#define VFP_MAP_BLOCKED_IPS6      "blocked_ips6"       /* hash: struct vfp_in6 saddr -> struct vfp_block */
#define VFP_MAP_BLOCKED_PREFIXES6 "blocked_prefixes6"  /* lpm:  struct vfp_lpm_key6 -> struct vfp_block */
#define VFP_MAP_ALLOW_IPS6        "allow_ips6"         /* lpm:  struct vfp_lpm_key6 -> struct vfp_mark */
#define VFP_MAP_OPTIONS_ALLOW6    "options_allow6"     /* lpm:  struct vfp_lpm_key6 -> struct vfp_mark */
#define VFP_MAP_CONFIG           "config"            /* array[1]: struct vfp_config (flags, SIP ports) */
#define VFP_MAP_STATS            "stats"             /* percpu array[VFP_STAT_ENTRIES]: struct vfp_counter */
#define VFP_MAP_XSKS             "xsks_map"          /* xskmap: rx queue -> AF_XDP socket */
#define VFP_MAP_SOURCE_NAMES     "source_names"      /* array[VFP_MAX_SOURCES]: source id -> name */

#define VFP_PROG_PIN             "prog"              /* the program itself, pinned beside its maps */

#define VFP_DEFAULT_BLOCK_CAPACITY  262144
#define VFP_DEFAULT_PREFIX_CAPACITY 65536
#define VFP_ALLOW_CAPACITY          16384
#define VFP_XSK_QUEUES              64
#define VFP_MAX_SOURCES             256
#define VFP_SOURCE_NAME_LEN         32

/* Source ids with a fixed meaning; feeds get ids from 16 upwards via source_names. */
#define VFP_SOURCE_UNKNOWN 0
#define VFP_SOURCE_MANUAL  1
#define VFP_SOURCE_AMQP    2

/*
 * Expiry clock: CLOCK_BOOTTIME in nanoseconds (bpf_ktime_get_boot_ns() in the
 * kernel; /proc/uptime or clock_gettime(CLOCK_BOOTTIME) in writers). It keeps
 * counting through suspend, unlike the monotonic clock, so a 1 h block does
 * not outlive a suspended hour. 0 means the entry never expires.
 */
struct vfp_block {
	__u64 expires_ns;  /* CLOCK_BOOTTIME ns; 0 = never */
	__u32 added_unix;  /* wall clock seconds when added, for listings */
	__u16 source_id;   /* who added it: see source_names */
	__u16 flags;       /* reserved, 0 */
};

struct vfp_lpm_key {
	__u32 prefixlen;   /* 0..32 */
	__u32 addr;        /* network byte order */
};

/* An IPv6 address as the frame carries it (16 bytes, network byte order). */
struct vfp_in6 {
	__u8 addr[16];
};

struct vfp_lpm_key6 {
	__u32 prefixlen;   /* 0..128 */
	__u8 addr[16];     /* network byte order */
};

struct vfp_mark {
	__u32 added_unix;
};

#define VFP_CFG_SCOPE_SIP_ONLY  (1u << 0) /* blocklist only for traffic to SIP ports */
#define VFP_CFG_STEALTH         (1u << 1) /* drop OPTIONS from sources not in options_allow */
#define VFP_CFG_MALFORMED       (1u << 2) /* drop malformed REGISTER */
#define VFP_CFG_SHADOW          (1u << 3) /* count would-drops, drop nothing */
#define VFP_CFG_DEFAULT         (VFP_CFG_STEALTH | VFP_CFG_MALFORMED)

#define VFP_MAX_SIP_PORTS 16

struct vfp_config {
	__u32 flags;
	__u32 nports;                     /* used entries of ports[] */
	__u16 ports[VFP_MAX_SIP_PORTS];   /* host byte order */
};

/*
 * Every packet lands in exactly one of these. The stats map holds them twice:
 * IPv4 and frames that are not IP at [reason], IPv6 at [VFP_STAT_IPV6 + reason],
 * so every counter can carry a family (vosctl stats, the family label of
 * the metrics). Named in the same order in scripts/stats.sh and
 * lib/maps/layout.ts; scripts/load.sh creates the map with VFP_STAT_ENTRIES
 * entries (test/unit/stats-layout.test.ts holds them together).
 */
enum vfp_stat {
	VFP_STAT_PASSED = 0,
	VFP_STAT_ALLOWLISTED,
	VFP_STAT_BLOCKED_EXACT,
	VFP_STAT_BLOCKED_PREFIX,
	VFP_STAT_OPTIONS_DROPPED,
	VFP_STAT_MALFORMED_REGISTER,
	VFP_STAT_REDIRECTED,
	VFP_STAT_NOT_IP,             /* neither IPv4 nor IPv6 (ARP, LLDP...) */
	VFP_STAT_SHADOW_WOULD_DROP,
	VFP_STAT_TINY_FRAGMENT,      /* first fragment to a SIP port too short to show its start line */
	VFP_STAT_UNPARSED_HEADERS,   /* IPv6 extension-header chain cut short, or an extension header not walked: passed */
	VFP_STAT_UNJUDGED,           /* UDP to a SIP port whose payload starts past what the SIP checks read: dropped */
	VFP_STAT_MAX
};

#define VFP_STAT_IPV6    VFP_STAT_MAX        /* index of the IPv6 half */
#define VFP_STAT_ENTRIES (2 * VFP_STAT_MAX)  /* entries of the stats map */

struct vfp_counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* VFP_MAPS_H */
