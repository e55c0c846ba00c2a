/* DNS answers into instance sets: the pure half of the dns:// backend.
 *
 * Everything here works on bytes a DNS server sent, so every length and
 * offset is checked before it is used: names may be compressed (RFC 1035
 * 4.1.4) and a pointer may only point backwards, which also rules out
 * loops; a name is at most 255 bytes; records past the end of the message
 * are an error, not a crash. No libuv and no c-ares: the backend hands over
 * the raw answers, tests and the fuzz target hand over crafted ones.
 *
 * Which answer wins, for a service N in domain D:
 *   1. SRV _https._tcp.N.D  (instances are called over TLS),
 *   2. SRV _http._tcp.N.D,
 *   3. A and AAAA of N.D, with the default port.
 * The first name with records wins. A failure (SERVFAIL, REFUSED, timeout,
 * a malformed answer) of a name that comes before the winner makes the
 * whole lookup a failure: the caller then keeps what it knew, rather than
 * switch to a less preferred answer because a better one was unreadable.
 * When every name is NXDOMAIN or has no records, the service has no
 * instances (the lookup succeeds with an empty set and `negative` set). */
#include <arpa/inet.h>
#include <stdio.h>

#include "registry/registry-internal.h"

#define DNS_HDR 12
#define T_A 1
#define T_AAAA 28
#define T_SRV 33
#define C_IN 1

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

/* Reads the name at *off into out (dotted, no trailing dot, lower-cased);
 * *off moves past the name as it appears in place. */
static int read_name(const uint8_t *m, size_t len, size_t *off, char *out,
                     size_t cap) {
  size_t p = *off, o = 0, end = 0, limit = *off;
  bool jumped = false;

  for (;;) {
    uint8_t l;
    if (p >= len)
      return MSVC_EPROTO;
    l = m[p];
    if ((l & 0xC0) == 0xC0) {
      size_t to;
      if (p + 1 >= len)
        return MSVC_EPROTO;
      to = ((size_t)(l & 0x3F) << 8) | m[p + 1];
      /* Only backwards, and before the previous jump: no loops. */
      if (to >= limit)
        return MSVC_EPROTO;
      if (!jumped)
        end = p + 2;
      jumped = true;
      limit = to;
      p = to;
      continue;
    }
    if ((l & 0xC0) != 0)
      return MSVC_EPROTO;
    if (l == 0) {
      if (!jumped)
        end = p + 1;
      break;
    }
    if (p + 1 + l > len || o + l + 2 > cap || o + l + 1 > 255)
      return MSVC_EPROTO;
    if (o > 0)
      out[o++] = '.';
    for (size_t i = 0; i < l; i++) {
      char c = (char)m[p + 1 + i];
      out[o++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    p += 1 + (size_t)l;
  }
  out[o] = '\0';
  *off = end;
  return MSVC_OK;
}

void msvc__dns_msg_free(msvc__dns_msg_t *msg) {
  msvc__free(msg->rr);
  memset(msg, 0, sizeof(*msg));
}

static int add_rr(msvc__dns_msg_t *msg, const msvc__dns_rr_t *rr) {
  if (msg->nrr == msg->cap) {
    size_t cap = msg->cap ? msg->cap * 2 : 8;
    msvc__dns_rr_t *n;
    if (cap > MSVC__DNS_MAX_RR)
      return MSVC_ETOOLARGE;
    n = msvc__realloc(msg->rr, cap * sizeof(*n));
    if (n == NULL)
      return MSVC_ENOMEM;
    msg->rr = n;
    msg->cap = cap;
  }
  msg->rr[msg->nrr++] = *rr;
  return MSVC_OK;
}

/* One resource record at *off; kept when it is A, AAAA or SRV of class IN. */
static int parse_rr(const uint8_t *m, size_t len, size_t *off, bool answer,
                    msvc__dns_msg_t *msg) {
  msvc__dns_rr_t rr;
  uint16_t type, cls, rdlen;
  size_t rd;
  int rc;

  memset(&rr, 0, sizeof(rr));
  if ((rc = read_name(m, len, off, rr.owner, sizeof(rr.owner))) != MSVC_OK)
    return rc;
  if (*off + 10 > len)
    return MSVC_EPROTO;
  type = rd16(m + *off);
  cls = rd16(m + *off + 2);
  rr.ttl = rd32(m + *off + 4);
  if (rr.ttl > 0x7FFFFFFFu) /* RFC 2181 8: the top bit set means zero */
    rr.ttl = 0;
  rdlen = rd16(m + *off + 8);
  rd = *off + 10;
  if (rd + rdlen > len)
    return MSVC_EPROTO;
  *off = rd + rdlen;
  if (cls != C_IN)
    return MSVC_OK;
  rr.type = type;
  rr.answer = answer;
  if (type == T_A || type == T_AAAA) {
    if (rdlen != (type == T_A ? 4 : 16))
      return MSVC_EPROTO;
    if (inet_ntop(type == T_A ? AF_INET : AF_INET6, m + rd, rr.target,
                  sizeof(rr.target)) == NULL)
      return MSVC_EPROTO;
  } else if (type == T_SRV) {
    size_t t = rd + 6;
    if (rdlen < 7)
      return MSVC_EPROTO;
    rr.priority = rd16(m + rd);
    rr.weight = rd16(m + rd + 2);
    rr.port = rd16(m + rd + 4);
    if ((rc = read_name(m, len, &t, rr.target, sizeof(rr.target))) != MSVC_OK)
      return rc;
    if (t != rd + rdlen)
      return MSVC_EPROTO;
  } else {
    return MSVC_OK;
  }
  return add_rr(msg, &rr);
}

int msvc__dns_parse(const uint8_t *m, size_t len, msvc__dns_msg_t *msg) {
  size_t off = DNS_HDR, i, qd, an, ns, ar;
  char name[256];
  int rc;

  memset(msg, 0, sizeof(*msg));
  if (m == NULL || len < DNS_HDR)
    return MSVC_EPROTO;
  if ((m[2] & 0x80) == 0) /* not a response */
    return MSVC_EPROTO;
  msg->truncated = (m[2] & 0x02) != 0;
  msg->rcode = m[3] & 0x0F;
  qd = rd16(m + 4);
  an = rd16(m + 6);
  ns = rd16(m + 8);
  ar = rd16(m + 10);
  for (i = 0; i < qd; i++) {
    if ((rc = read_name(m, len, &off, name, sizeof(name))) != MSVC_OK)
      goto fail;
    if (off + 4 > len) {
      rc = MSVC_EPROTO;
      goto fail;
    }
    off += 4;
  }
  for (i = 0; i < an + ns + ar; i++) {
    if ((rc = parse_rr(m, len, &off, i < an, msg)) != MSVC_OK)
      goto fail;
  }
  return MSVC_OK;
fail:
  msvc__dns_msg_free(msg);
  return rc;
}

/* ---- answers into a set ----------------------------------------------------
 */

static uint32_t ttl_min(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* "10.0.0.1-8080", kept to the alphabet of instance ids. */
static int add_instance(msvc_registry_set_t *set, const char *addr,
                        uint16_t port, uint32_t weight, bool tls) {
  char id[MSVC_REGISTRY_ADDRESS_MAX + 8];
  msvc_registry_meta_t meta = {"scheme", "https"};
  msvc_registry_instance_t tmp, copy;
  size_t i;
  int rc;

  if (addr[0] == '\0' || port == 0)
    return MSVC_OK; /* "." as SRV target: the service is decidedly absent */
  snprintf(id, sizeof(id), "%s-%u", addr, (unsigned)port);
  for (i = 0; id[i] != '\0'; i++)
    if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
          (id[i] >= '0' && id[i] <= '9') || id[i] == '.' || id[i] == '-'))
      id[i] = '_';
  msvc_registry_instance_init(&tmp);
  tmp.id = id;
  tmp.service = set->service;
  tmp.address = addr;
  tmp.port = port;
  tmp.weight = weight;
  if (tls) {
    tmp.metadata = &meta;
    tmp.nmetadata = 1;
  }
  if (msvc__reg_instance_validate(&tmp) != MSVC_OK)
    return MSVC_OK; /* a name we cannot use is skipped, not fatal */
  if ((rc = msvc__reg_instance_copy(&copy, &tmp)) != MSVC_OK)
    return rc;
  if ((rc = msvc__reg_set_add(set, &copy)) != MSVC_OK)
    msvc__reg_instance_clear(&copy);
  return rc;
}

/* An SRV target's address from the additional section, when the server
 * sent one (Kubernetes' DNS does): saves a lookup and gives each pod a
 * stable id. Otherwise the target name itself is the address. */
static const char *target_address(const msvc__dns_msg_t *msg,
                                  const char *target) {
  size_t i;

  for (i = 0; i < msg->nrr; i++)
    if ((msg->rr[i].type == T_A || msg->rr[i].type == T_AAAA) &&
        strcmp(msg->rr[i].owner, target) == 0)
      return msg->rr[i].target;
  return target;
}

static int srv_to_set(const msvc__dns_msg_t *msg, bool tls,
                      msvc_registry_set_t *set, uint32_t *ttl) {
  uint16_t best = UINT16_MAX;
  size_t i;
  int rc;

  /* RFC 2782: only the lowest priority is used while it has targets. */
  for (i = 0; i < msg->nrr; i++)
    if (msg->rr[i].answer && msg->rr[i].type == T_SRV &&
        msg->rr[i].priority < best)
      best = msg->rr[i].priority;
  for (i = 0; i < msg->nrr; i++) {
    const msvc__dns_rr_t *rr = &msg->rr[i];
    if (!rr->answer || rr->type != T_SRV || rr->priority != best)
      continue;
    *ttl = ttl_min(*ttl, rr->ttl);
    /* Weight 0 means "a very small share" (RFC 2782), not "none". */
    rc = add_instance(set, target_address(msg, rr->target), rr->port,
                      rr->weight > 0 ? rr->weight : 1, tls);
    if (rc != MSVC_OK)
      return rc;
  }
  return MSVC_OK;
}

static bool has_answer(const msvc__dns_msg_t *msg, uint16_t type) {
  size_t i;

  for (i = 0; i < msg->nrr; i++)
    if (msg->rr[i].answer && msg->rr[i].type == type)
      return true;
  return false;
}

/* What one reply says: 1 records, 0 nothing there (NXDOMAIN, NODATA),
 * negative: an error, with why filled in. */
static int classify(const msvc__dns_reply_t *r, uint16_t type,
                    msvc__dns_msg_t *msg, const char *what, char *why,
                    size_t whylen) {
  int rc;

  memset(msg, 0, sizeof(*msg));
  if (r->err < 0) {
    snprintf(why, whylen, "%s: %s", what, msvc_strerror(r->err));
    return r->err;
  }
  if ((rc = msvc__dns_parse(r->buf, r->len, msg)) != MSVC_OK) {
    snprintf(why, whylen, "%s: %s answer (%zu bytes)", what,
             rc == MSVC_ETOOLARGE ? "oversized" : "malformed", r->len);
    return rc;
  }
  if (msg->rcode == 3)
    return 0;
  if (msg->rcode != 0) {
    snprintf(why, whylen, "%s: server answered %s", what,
             msg->rcode == 2   ? "SERVFAIL"
             : msg->rcode == 5 ? "REFUSED"
                               : "an error");
    return MSVC_EIO;
  }
  if (msg->truncated) {
    snprintf(why, whylen, "%s: truncated answer", what);
    return MSVC_EPROTO;
  }
  return has_answer(msg, type) ? 1 : 0;
}

int msvc__dns_build_set(const char *service,
                        const msvc__dns_reply_t r[MSVC__DNS_NQUERIES],
                        uint16_t default_port, msvc_registry_set_t **out,
                        uint32_t *ttl_s, bool *negative, char *why,
                        size_t whylen) {
  static const uint16_t types[MSVC__DNS_NQUERIES] = {T_SRV, T_SRV, T_A, T_AAAA};
  static const char *const what[MSVC__DNS_NQUERIES] = {
      "SRV _https._tcp", "SRV _http._tcp", "A", "AAAA"};
  msvc__dns_msg_t msg[MSVC__DNS_NQUERIES];
  msvc_registry_set_t *set = NULL;
  int cls[MSVC__DNS_NQUERIES], rc = MSVC_OK;
  uint32_t ttl = UINT32_MAX;
  size_t i;

  *out = NULL;
  *negative = false;
  *ttl_s = 0;
  if (why != NULL && whylen > 0)
    why[0] = '\0';
  for (i = 0; i < MSVC__DNS_NQUERIES; i++)
    cls[i] = classify(&r[i], types[i], &msg[i], what[i], why, whylen);
  if ((set = msvc__reg_set_new(service)) == NULL) {
    rc = MSVC_ENOMEM;
    goto done;
  }
  for (i = 0; i < 2; i++) {
    if (cls[i] < 0) {
      rc = cls[i];
      goto done;
    }
    if (cls[i] > 0) {
      rc = srv_to_set(&msg[i], i == 0, set, &ttl);
      goto done;
    }
  }
  if (cls[2] < 0 || cls[3] < 0) {
    rc = cls[2] < 0 ? cls[2] : cls[3];
    /* The message for the A lookup, not the AAAA one, when both failed. */
    if (cls[2] < 0) {
      /* classify() starts from an empty message: give back what the first
       * pass parsed (a SERVFAIL may still carry records) before it runs again. */
      msvc__dns_msg_free(&msg[2]);
      classify(&r[2], T_A, &msg[2], what[2], why, whylen);
    }
    goto done;
  }
  for (i = 2; i < MSVC__DNS_NQUERIES && rc == MSVC_OK; i++) {
    size_t k;
    /* An NXDOMAIN reply names nothing, whatever records it carries. */
    if (cls[i] <= 0)
      continue;
    for (k = 0; k < msg[i].nrr && rc == MSVC_OK; k++) {
      const msvc__dns_rr_t *rr = &msg[i].rr[k];
      if (!rr->answer || rr->type != types[i])
        continue;
      ttl = ttl_min(ttl, rr->ttl);
      rc = add_instance(set, rr->target, default_port, 1, false);
    }
  }
  *negative = cls[2] == 0 && cls[3] == 0;
done:
  for (i = 0; i < MSVC__DNS_NQUERIES; i++)
    msvc__dns_msg_free(&msg[i]);
  if (rc != MSVC_OK) {
    msvc_registry_set_unref(set);
    if (rc == MSVC_ENOMEM && why != NULL && whylen > 0)
      snprintf(why, whylen, "out of memory");
    return rc;
  }
  msvc__reg_set_finish(set);
  *ttl_s = ttl == UINT32_MAX ? 0 : ttl;
  *out = set;
  return MSVC_OK;
}

/* ---- dns:// parameters ------------------------------------------------------
 */

static bool domain_valid(const char *d, size_t len) {
  size_t i, label = 0;

  if (len == 0 || len > MSVC__DNS_DOMAIN_MAX || d[0] == '.')
    return false;
  for (i = 0; i < len; i++) {
    char c = d[i];
    if (c == '.') {
      if (label == 0)
        return false;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_') ||
        ++label > 63)
      return false;
  }
  return true;
}

/* A numeric IPv4 address with a port, or [IPv6]:port. */
static bool server_valid(const char *s, size_t len) {
  char host[64];
  const char *colon = NULL, *h = s;
  size_t hlen, i;
  unsigned long port = 0;
  unsigned char bin[16];

  for (i = 0; i < len; i++)
    if (s[i] == ':')
      colon = s + i;
  if (colon == NULL || colon + 1 == s + len)
    return false;
  hlen = (size_t)(colon - s);
  if (len > 0 && s[0] == '[') {
    if (hlen < 3 || s[hlen - 1] != ']')
      return false;
    h = s + 1;
    hlen -= 2;
  }
  if (hlen == 0 || hlen >= sizeof(host))
    return false;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  if (inet_pton(h == s ? AF_INET : AF_INET6, host, bin) != 1)
    return false;
  for (const char *c = colon + 1; c < s + len; c++) {
    if (*c < '0' || *c > '9' || port > 65535)
      return false;
    port = port * 10 + (unsigned long)(*c - '0');
  }
  return port >= 1 && port <= 65535;
}

static bool number(const char *v, size_t len, unsigned long lo,
                   unsigned long hi, uint32_t *out) {
  unsigned long n = 0;
  size_t i;

  if (len == 0 || len > 9)
    return false;
  for (i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9')
      return false;
    n = n * 10 + (unsigned long)(v[i] - '0');
  }
  if (n < lo || n > hi)
    return false;
  *out = (uint32_t)n;
  return true;
}

static int bad(char *why, size_t whylen, const char *what, const char *v,
               size_t len) {
  if (why != NULL && whylen > 0)
    snprintf(why, whylen, "%s \"%.*s\"", what, (int)(len > 200 ? 200 : len), v);
  return MSVC_EURI;
}

int msvc__dns_config_parse(const char *rest, msvc__dns_config_t *cfg, char *why,
                           size_t whylen) {
  const char *p;

  memset(cfg, 0, sizeof(*cfg));
  cfg->port = 80;
  cfg->min_ttl_ms = 1000;
  cfg->max_ttl_ms = 60000;
  cfg->timeout_ms = 1000;
  cfg->tries = 3;
  if (rest[0] != '?')
    return bad(why, whylen,
               "dns:// takes only parameters (dns://?domain=D), "
               "got",
               rest, strlen(rest));
  for (p = rest + 1; *p != '\0';) {
    const char *amp = strchr(p, '&');
    size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    const char *v = eq != NULL ? eq + 1 : NULL;
    size_t klen = eq != NULL ? (size_t)(eq - p) : len;
    size_t vlen = eq != NULL ? len - klen - 1 : 0;
    uint32_t n;

#define KEY(s) (klen == sizeof(s) - 1 && memcmp(p, s, klen) == 0)
    if (v == NULL)
      return bad(why, whylen, "expected key=value, got", p, len);
    if (KEY("domain")) {
      size_t dl = vlen;
      if (dl > 1 && v[dl - 1] == '.')
        dl--; /* the root is implied */
      if (!domain_valid(v, dl))
        return bad(why, whylen, "bad domain", v, vlen);
      memcpy(cfg->domain, v, dl);
      cfg->domain[dl] = '\0';
    } else if (KEY("server")) {
      if (!server_valid(v, vlen) || vlen >= sizeof(cfg->server))
        return bad(why, whylen,
                   "server must be a numeric IP:port or [IPv6]:port, got", v,
                   vlen);
      memcpy(cfg->server, v, vlen);
      cfg->server[vlen] = '\0';
    } else if (KEY("port")) {
      if (!number(v, vlen, 1, 65535, &n))
        return bad(why, whylen, "port must be 1..65535, got", v, vlen);
      cfg->port = (uint16_t)n;
    } else if (KEY("min_ttl_ms")) {
      if (!number(v, vlen, 50, 86400000, &cfg->min_ttl_ms))
        return bad(why, whylen, "min_ttl_ms must be 50..86400000, got", v,
                   vlen);
    } else if (KEY("max_ttl_ms")) {
      if (!number(v, vlen, 50, 86400000, &cfg->max_ttl_ms))
        return bad(why, whylen, "max_ttl_ms must be 50..86400000, got", v,
                   vlen);
    } else if (KEY("timeout_ms")) {
      if (!number(v, vlen, 10, 60000, &cfg->timeout_ms))
        return bad(why, whylen, "timeout_ms must be 10..60000, got", v, vlen);
    } else if (KEY("tries")) {
      if (!number(v, vlen, 1, 10, &cfg->tries))
        return bad(why, whylen, "tries must be 1..10, got", v, vlen);
    } else {
      return bad(why, whylen,
                 "unknown dns:// parameter (domain, server, port, "
                 "min_ttl_ms, max_ttl_ms, timeout_ms, tries)",
                 p, klen);
    }
#undef KEY
    p += len;
    if (*p == '&')
      p++;
  }
  if (cfg->domain[0] == '\0')
    return bad(why, whylen, "dns:// needs domain=", rest, strlen(rest));
  if (cfg->max_ttl_ms < cfg->min_ttl_ms)
    return bad(why, whylen, "max_ttl_ms is below min_ttl_ms in", rest,
               strlen(rest));
  return MSVC_OK;
}
