/* Builds DNS answers byte by byte, for the tests of the dns:// backend:
 * crafted answers for the parser, and the replies of a test server. */
#ifndef MSVC_TEST_DNS_BUILD_H
#define MSVC_TEST_DNS_BUILD_H

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

typedef struct dnsb_s {
  uint8_t b[65536];
  size_t len;
} dnsb_t;

static inline void dnsb_u16(dnsb_t *d, unsigned v) {
  d->b[d->len++] = (uint8_t)(v >> 8);
  d->b[d->len++] = (uint8_t)v;
}

static inline void dnsb_u32(dnsb_t *d, uint32_t v) {
  dnsb_u16(d, v >> 16);
  dnsb_u16(d, v & 0xFFFF);
}

static inline void dnsb_name(dnsb_t *d, const char *name) {
  while (*name != '\0') {
    const char *dot = strchr(name, '.');
    size_t l = dot != NULL ? (size_t)(dot - name) : strlen(name);
    d->b[d->len++] = (uint8_t)l;
    memcpy(d->b + d->len, name, l);
    d->len += l;
    name += l;
    if (*name == '.')
      name++;
  }
  d->b[d->len++] = 0;
}

/* Header and one question; the counts of the sections are given now. */
static inline void dnsb_begin(dnsb_t *d, unsigned id, int rcode,
                              const char *qname, unsigned qtype, unsigned an,
                              unsigned ns, unsigned ar) {
  d->len = 0;
  dnsb_u16(d, id);
  dnsb_u16(d, 0x8180 | (unsigned)rcode); /* QR RD RA */
  dnsb_u16(d, 1);
  dnsb_u16(d, an);
  dnsb_u16(d, ns);
  dnsb_u16(d, ar);
  dnsb_name(d, qname);
  dnsb_u16(d, qtype);
  dnsb_u16(d, 1);
}

static inline void dnsb_rr(dnsb_t *d, const char *owner, unsigned type,
                           uint32_t ttl, unsigned rdlen) {
  dnsb_name(d, owner);
  dnsb_u16(d, type);
  dnsb_u16(d, 1);
  dnsb_u32(d, ttl);
  dnsb_u16(d, rdlen);
}

static inline void dnsb_a(dnsb_t *d, const char *owner, uint32_t ttl,
                          const char *ip) {
  dnsb_rr(d, owner, 1, ttl, 4);
  inet_pton(AF_INET, ip, d->b + d->len);
  d->len += 4;
}

static inline void dnsb_aaaa(dnsb_t *d, const char *owner, uint32_t ttl,
                             const char *ip) {
  dnsb_rr(d, owner, 28, ttl, 16);
  inet_pton(AF_INET6, ip, d->b + d->len);
  d->len += 16;
}

static inline void dnsb_srv(dnsb_t *d, const char *owner, uint32_t ttl,
                            unsigned prio, unsigned weight, unsigned port,
                            const char *target) {
  size_t at;

  dnsb_rr(d, owner, 33, ttl, 0);
  at = d->len - 2;
  dnsb_u16(d, prio);
  dnsb_u16(d, weight);
  dnsb_u16(d, port);
  dnsb_name(d, target);
  d->b[at] = (uint8_t)((d->len - at - 2) >> 8);
  d->b[at + 1] = (uint8_t)(d->len - at - 2);
}

#endif
