/*
 * The identity in a peer certificate: subject and subject alternative
 * names. mbedtls 2.28 keeps only DNS names in its parsed list, so URI names
 * (SPIFFE identities) and IP addresses are read from the raw extension.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>

#include "tls/tls-internal.h"

int64_t msvc__tls_time(const mbedtls_x509_time *t) {
  struct tm tm;

  memset(&tm, 0, sizeof(tm));
  tm.tm_year = t->year - 1900;
  tm.tm_mon = t->mon - 1;
  tm.tm_mday = t->day;
  tm.tm_hour = t->hour;
  tm.tm_min = t->min;
  tm.tm_sec = t->sec;
  return (int64_t)timegm(&tm);
}

typedef void (*san_fn)(void *arg, int kind, const unsigned char *p, size_t len);

/* Calls fn with every dNSName, URI and iPAddress in the certificate's
 * subjectAltName extension. A malformed extension ends the walk: mbedtls
 * has already refused certificates it cannot parse. */
static void each_san(const mbedtls_x509_crt *crt, san_fn fn, void *arg) {
  unsigned char *p = crt->v3_ext.p, *end = p + crt->v3_ext.len, *ext_end;
  size_t len;

  if (p == NULL || mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED |
                                                           MBEDTLS_ASN1_SEQUENCE) != 0)
    return;
  end = p + len;
  while (p < end) {
    mbedtls_x509_buf oid;
    int critical = 0;

    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED |
                                                 MBEDTLS_ASN1_SEQUENCE) != 0)
      return;
    ext_end = p + len;
    if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID) != 0)
      return;
    oid.p = p;
    p += oid.len;
    (void)mbedtls_asn1_get_bool(&p, ext_end, &critical);
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
      return;
    if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) == 0) {
      unsigned char *q = p, *qend = p + len;
      size_t n;

      if (mbedtls_asn1_get_tag(&q, qend, &n, MBEDTLS_ASN1_CONSTRUCTED |
                                                 MBEDTLS_ASN1_SEQUENCE) != 0)
        return;
      qend = q + n;
      while (q + 2 <= qend) {
        int tag = *q++;
        if (mbedtls_asn1_get_len(&q, qend, &n) != 0)
          return;
        if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2))
          fn(arg, MSVC_TLS_SAN_DNS, q, n);
        else if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 6))
          fn(arg, MSVC_TLS_SAN_URI, q, n);
        else if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7))
          fn(arg, MSVC_TLS_SAN_IP, q, n);
        q += n;
      }
    }
    p = ext_end;
  }
}

typedef struct ip_match_s {
  unsigned char addr[16];
  size_t len;
  bool found;
} ip_match_t;

static void match_ip(void *arg, int kind, const unsigned char *p, size_t len) {
  ip_match_t *m = arg;

  if (kind == MSVC_TLS_SAN_IP && len == m->len && memcmp(p, m->addr, len) == 0)
    m->found = true;
}

bool msvc__tls_crt_has_ip(const mbedtls_x509_crt *crt, const char *ip) {
  ip_match_t m;

  memset(&m, 0, sizeof(m));
  if (inet_pton(AF_INET, ip, m.addr) == 1)
    m.len = 4;
  else if (inet_pton(AF_INET6, ip, m.addr) == 1)
    m.len = 16;
  else
    return false;
  each_san(crt, match_ip, &m);
  return m.found;
}

typedef struct collect_s {
  msvc__tls_peer_t *p;
  int err;
} collect_t;

static void collect(void *arg, int kind, const unsigned char *v, size_t len) {
  collect_t *c = arg;
  msvc__tls_peer_t *p = c->p;
  char text[INET6_ADDRSTRLEN], *s, **names;

  if (c->err != 0)
    return;
  if (kind == MSVC_TLS_SAN_IP) {
    if (inet_ntop(len == 4 ? AF_INET : AF_INET6, v, text, sizeof(text)) == NULL ||
        (len != 4 && len != 16))
      return;
    s = msvc__strdup(text);
  } else {
    if (memchr(v, '\0', len) != NULL)
      return; /* an embedded NUL would let a name pass for another */
    s = msvc__strndup((const char *)v, len);
  }
  names = s != NULL ? msvc__realloc(p->names[kind], (p->count[kind] + 2) * sizeof(char *))
                    : NULL;
  if (names == NULL) {
    msvc__free(s);
    c->err = MSVC_ENOMEM;
    return;
  }
  names[p->count[kind]++] = s;
  names[p->count[kind]] = NULL;
  p->names[kind] = names;
}

int msvc__tls_peer_load(msvc__tls_peer_t *p, const mbedtls_x509_crt *crt) {
  char dn[512];
  collect_t c = {p, 0};

  memset(p, 0, sizeof(*p));
  if (mbedtls_x509_dn_gets(dn, sizeof(dn), &crt->subject) < 0)
    dn[0] = '\0';
  p->subject = msvc__strdup(dn);
  if (p->subject == NULL)
    return MSVC_ENOMEM;
  each_san(crt, collect, &c);
  if (c.err != 0)
    msvc__tls_peer_free(p);
  return c.err;
}

void msvc__tls_peer_free(msvc__tls_peer_t *p) {
  size_t k, i;

  for (k = 0; k < 3; k++) {
    for (i = 0; i < p->count[k]; i++)
      msvc__free(p->names[k][i]);
    msvc__free(p->names[k]);
  }
  msvc__free(p->subject);
  memset(p, 0, sizeof(*p));
}
