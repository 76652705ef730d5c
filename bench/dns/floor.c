/*
 * The floor of a cache hit: the least CPU any DNS server that answers over UDP
 * sockets can spend per answer on this machine (bench/dns/run, forwarding mode
 * "hits"). It does nothing a server could skip: it reads datagrams in batches
 * (recvmmsg, blocking, up to 64), turns each query into a response in place
 * (QR and RA set, RCODE NOERROR, the question kept, one A record inserted that
 * points at the question's name, 16 bytes: about the size of a real hit, and
 * the query's additional section, its EDNS OPT record, echoed after it) and
 * sends the batch back (sendmmsg). No parsing beyond the header, no lookup, no
 * cache. Its CPU per answer is the kernel's receive and send plus the least
 * user-space work. Measured the same way as the servers (dnsperf at full
 * speed from the other CPU), Unbound's CPU per answer divided by the floor's
 * estimates the best ratio a server using these socket calls could reach
 * against Unbound in the same run. It is an estimate, not a bound: a server
 * that does more work per query finds more datagrams per wake-up, and the
 * kernel's share per answer falls a little with batch size.
 *
 * Build and run (the bench does both):  cc -O2 -o floor floor.c && ./floor PORT
 * Listens on 127.0.0.1:PORT only; runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define BUFSZ 4096

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 64;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("bind");
        return 1;
    }
    static unsigned char bufs[BATCH][BUFSZ];
    static struct sockaddr_in peers[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr in[BATCH], out[BATCH];
    static const unsigned char answer[16] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1};
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = BUFSZ - sizeof answer;
            memset(&in[i].msg_hdr, 0, sizeof in[i].msg_hdr);
            in[i].msg_hdr.msg_name = &peers[i];
            in[i].msg_hdr.msg_namelen = sizeof peers[i];
            in[i].msg_hdr.msg_iov = &iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, in, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            perror("recvmmsg");
            continue;
        }
        int m = 0;
        for (int i = 0; i < n; i++) {
            unsigned char *p = bufs[i];
            size_t len = in[i].msg_len;
            if (len < 12 || (p[2] & 0x80)) {
                continue; /* not a query */
            }
            p[2] = (unsigned char)((p[2] & 0x79) | 0x80); /* QR, keep opcode and RD; clear AA, TC */
            p[3] = 0x80;                                  /* RA, NOERROR */
            size_t q = 12;
            while (q < len && p[q] != 0 && (p[q] & 0xc0) == 0) {
                q += (size_t)p[q] + 1;
            }
            q += 5; /* root label, type, class */
            if (q > len) {
                continue;
            }
            if (p[4] != 0 || p[5] != 1 || p[6] != 0 || p[7] != 0 || p[8] != 0 || p[9] != 0) {
                continue; /* one question, no answer or authority: what a client asks */
            }
            p[7] = 1; /* ANCOUNT 1; ARCOUNT as asked */
            /* The additional section (the OPT record) moves after the answer. */
            memmove(p + q + sizeof answer, p + q, len - q);
            memcpy(p + q, answer, sizeof answer);
            iov[i].iov_len = len + sizeof answer;
            out[m].msg_hdr = in[i].msg_hdr;
            out[m].msg_hdr.msg_iov = &iov[i];
            m++;
        }
        for (int sent = 0; sent < m;) {
            int k = sendmmsg(fd, out + sent, (unsigned)(m - sent), 0);
            sent += k > 0 ? k : 1; /* skip a datagram the kernel refuses */
        }
    }
}
