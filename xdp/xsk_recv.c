// SPDX-License-Identifier: GPL-2.0
/*
 * xsk_recv: open an AF_XDP socket on IFACE queue QUEUE, register it in the
 * pinned xsks_map so vos-fastpath redirects that queue's traffic to it, and
 * print one line per frame received:  frame <len> <udp dport> <payload prefix>
 * Prints "ready" once registered. Exits 0 after COUNT frames, 1 on timeout.
 * Used by the lab tests; also a minimal example of a user-space SIP fast path.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/if_xdp.h>
#include <bpf/bpf.h>
#include <xdp/xsk.h>

#define NUM_FRAMES 256
#define FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void print_frame(const unsigned char *pkt, unsigned len)
{
	const struct ethhdr *eth = (const void *)pkt;
	const struct iphdr *iph = (const void *)(eth + 1);
	unsigned dport = 0, off;

	if (len >= sizeof(*eth) + sizeof(*iph) && eth->h_proto == htons(ETH_P_IP) &&
	    iph->protocol == IPPROTO_UDP && len >= sizeof(*eth) + iph->ihl * 4u + sizeof(struct udphdr)) {
		const struct udphdr *udp = (const void *)((const unsigned char *)iph + iph->ihl * 4);

		dport = ntohs(udp->dest);
		off = sizeof(*eth) + iph->ihl * 4 + sizeof(*udp);
		printf("frame %u %u ", len, dport);
		for (unsigned i = off; i < len && i < off + 32; i++)
			putchar(pkt[i] >= 32 && pkt[i] < 127 ? pkt[i] : '.');
		putchar('\n');
	} else {
		printf("frame %u 0\n", len);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp, rx;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_socket_config cfg = {
		.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS,
		.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD, /* vos-fastpath is the program */
		.bind_flags = XDP_COPY,
	};
	void *buf;
	__u32 idx, queue;
	int map_fd, err, got = 0, want, timeout_ms;
	long long deadline;

	if (argc != 6) {
		fprintf(stderr, "usage: %s <iface> <queue> <xsks_map pin> <timeout ms> <frames>\n", argv[0]);
		return 2;
	}
	queue = atoi(argv[2]);
	timeout_ms = atoi(argv[4]);
	want = atoi(argv[5]);

	map_fd = bpf_obj_get(argv[3]);
	if (map_fd < 0) {
		fprintf(stderr, "xsk_recv: cannot open %s: %s\n", argv[3], strerror(errno));
		return 3;
	}
	if (posix_memalign(&buf, getpagesize(), NUM_FRAMES * FRAME_SIZE)) {
		fprintf(stderr, "xsk_recv: out of memory\n");
		return 1;
	}
	err = xsk_umem__create(&umem, buf, NUM_FRAMES * FRAME_SIZE, &fill, &comp, NULL);
	if (err) {
		fprintf(stderr, "xsk_recv: umem: %s\n", strerror(-err));
		return 1;
	}
	err = xsk_socket__create(&xsk, argv[1], queue, umem, &rx, NULL, &cfg);
	if (err) {
		fprintf(stderr, "xsk_recv: socket on %s queue %u: %s\n", argv[1], queue, strerror(-err));
		return 1;
	}
	if (xsk_ring_prod__reserve(&fill, NUM_FRAMES / 2, &idx) != NUM_FRAMES / 2)
		return 1;
	for (int i = 0; i < NUM_FRAMES / 2; i++)
		*xsk_ring_prod__fill_addr(&fill, idx++) = (__u64)i * FRAME_SIZE;
	xsk_ring_prod__submit(&fill, NUM_FRAMES / 2);

	err = bpf_map_update_elem(map_fd, &queue, &(int){ xsk_socket__fd(xsk) }, 0);
	if (err) {
		fprintf(stderr, "xsk_recv: register in xsks_map: %s\n", strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	deadline = now_ms() + timeout_ms;
	while (got < want && now_ms() < deadline) {
		struct pollfd pfd = { .fd = xsk_socket__fd(xsk), .events = POLLIN };
		__u32 n, i, fidx;

		poll(&pfd, 1, 100);
		n = xsk_ring_cons__peek(&rx, 64, &idx);
		for (i = 0; i < n; i++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&rx, idx + i);

			print_frame(xsk_umem__get_data(buf, d->addr), d->len);
			if (xsk_ring_prod__reserve(&fill, 1, &fidx) == 1) {
				*xsk_ring_prod__fill_addr(&fill, fidx) = xsk_umem__extract_addr(d->addr);
				xsk_ring_prod__submit(&fill, 1);
			}
		}
		xsk_ring_cons__release(&rx, n);
		got += n;
	}
	bpf_map_delete_elem(map_fd, &queue);
	xsk_socket__delete(xsk);
	xsk_umem__delete(umem);
	return got >= want ? 0 : 1;
}
