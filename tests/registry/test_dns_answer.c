/* The pure half of the dns:// backend: crafted answers in, sets out. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "registry/dns_build.h"
#include "registry/registry-internal.h"

static dnsb_t ans[MSVC__DNS_NQUERIES];

static void nx(int i, const char *name, unsigned type) {
  dnsb_begin(&ans[i], 1, 3, name, type, 0, 0, 0);
}

static void nodata(int i, const char *name, unsigned type) {
  dnsb_begin(&ans[i], 1, 0, name, type, 0, 0, 0);
}

static int build(msvc__dns_reply_t r[MSVC__DNS_NQUERIES],
                 msvc_registry_set_t **set, uint32_t *ttl, bool *neg, char *why,
                 size_t whylen) {
  int i;

  for (i = 0; i < MSVC__DNS_NQUERIES; i++)
    if (r[i].err == 0) {
      r[i].buf = ans[i].b;
      r[i].len = ans[i].len;
    }
  return msvc__dns_build_set("api", r, 8080, set, ttl, neg, why, whylen);
}

Test(dns_answer, srv_with_additional_addresses_gives_ips_weights_ttl) {
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES] = {{0}};
  msvc_registry_set_t *set;
  uint32_t ttl;
  bool neg;
  char why[256];
  const msvc_registry_instance_t *a, *b;

  nx(0, "_https._tcp.api.svc.local", 33);
  dnsb_begin(&ans[1], 1, 0, "_http._tcp.api.svc.local", 33, 2, 0, 2);
  dnsb_srv(&ans[1], "_http._tcp.api.svc.local", 30, 0, 10, 8081,
           "p1.svc.local");
  dnsb_srv(&ans[1], "_http._tcp.api.svc.local", 20, 0, 30, 8082,
           "P2.svc.local");
  dnsb_a(&ans[1], "p1.svc.local", 30, "10.0.0.1");
  dnsb_aaaa(&ans[1], "p2.svc.local", 30, "fd00::2");
  nodata(2, "api.svc.local", 1);
  nodata(3, "api.svc.local", 28);
  cr_assert_eq(build(r, &set, &ttl, &neg, why, sizeof(why)), MSVC_OK, "%s",
               why);
  cr_assert_eq(msvc_registry_set_count(set), 2);
  cr_assert_eq(ttl, 20);
  cr_assert(!neg);
  a = msvc_registry_set_at(set, 0);
  b = msvc_registry_set_at(set, 1);
  cr_assert_str_eq(a->address, "10.0.0.1");
  cr_assert_eq(a->port, 8081);
  cr_assert_eq(a->weight, 10);
  cr_assert_str_eq(a->id, "10.0.0.1-8081");
  cr_assert_str_eq(b->address, "fd00::2");
  cr_assert_eq(b->weight, 30);
  cr_assert_str_eq(b->id, "fd00__2-8082");
  cr_assert_null(msvc_registry_instance_meta(a, "scheme"));
  msvc_registry_set_unref(set);
}

Test(dns_answer, https_srv_wins_and_asks_for_tls_lowest_priority_only) {
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES] = {{0}};
  msvc_registry_set_t *set;
  uint32_t ttl;
  bool neg;
  char why[256];
  const msvc_registry_instance_t *a;

  dnsb_begin(&ans[0], 1, 0, "_https._tcp.api.d", 33, 3, 0, 0);
  dnsb_srv(&ans[0], "_https._tcp.api.d", 5, 10, 0, 8443, "backup.d");
  dnsb_srv(&ans[0], "_https._tcp.api.d", 5, 1, 0, 8443, "main.d");
  dnsb_srv(&ans[0], "_https._tcp.api.d", 5, 1, 7, 8444, "main.d");
  dnsb_begin(&ans[1], 1, 0, "_http._tcp.api.d", 33, 1, 0, 0);
  dnsb_srv(&ans[1], "_http._tcp.api.d", 5, 0, 1, 80, "plain.d");
  nodata(2, "api.d", 1);
  nodata(3, "api.d", 28);
  cr_assert_eq(build(r, &set, &ttl, &neg, why, sizeof(why)), MSVC_OK, "%s",
               why);
  cr_assert_eq(msvc_registry_set_count(set), 2, "priority 10 left out");
  a = msvc_registry_set_at(set, 0);
  cr_assert_str_eq(a->address, "main.d", "no additional record: the name");
  cr_assert_eq(a->weight, 1, "SRV weight 0 is a small share, not none");
  cr_assert_str_eq(msvc_registry_instance_meta(a, "scheme"), "https");
  cr_assert_eq(msvc_registry_set_at(set, 1)->weight, 7);
  msvc_registry_set_unref(set);
}

Test(dns_answer, a_and_aaaa_with_default_port_when_no_srv) {
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES] = {{0}};
  msvc_registry_set_t *set;
  uint32_t ttl;
  bool neg;
  char why[256];

  nx(0, "_https._tcp.api.d", 33);
  nodata(1, "_http._tcp.api.d", 33);
  dnsb_begin(&ans[2], 1, 0, "api.d", 1, 2, 0, 0);
  dnsb_a(&ans[2], "api.d", 9, "10.0.0.7");
  dnsb_a(&ans[2], "api.d", 9, "10.0.0.8");
  dnsb_begin(&ans[3], 1, 0, "api.d", 28, 1, 0, 0);
  dnsb_aaaa(&ans[3], "api.d", 4, "::1");
  cr_assert_eq(build(r, &set, &ttl, &neg, why, sizeof(why)), MSVC_OK, "%s",
               why);
  cr_assert_eq(msvc_registry_set_count(set), 3);
  cr_assert_eq(ttl, 4);
  cr_assert_eq(msvc_registry_set_at(set, 0)->port, 8080);
  cr_assert_eq(msvc_registry_set_at(set, 0)->weight, 1);
  msvc_registry_set_unref(set);
}

Test(dns_answer, nxdomain_everywhere_is_an_empty_negative_set) {
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES] = {{0}};
  msvc_registry_set_t *set;
  uint32_t ttl;
  bool neg;
  char why[256];

  nx(0, "_https._tcp.api.d", 33);
  nx(1, "_http._tcp.api.d", 33);
  nx(2, "api.d", 1);
  nodata(3, "api.d", 28);
  cr_assert_eq(build(r, &set, &ttl, &neg, why, sizeof(why)), MSVC_OK);
  cr_assert_eq(msvc_registry_set_count(set), 0);
  cr_assert(neg);
  cr_assert(!msvc_registry_set_stale(set));
  msvc_registry_set_unref(set);
}

Test(dns_answer, records_in_an_nxdomain_reply_are_ignored) {
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES] = {{0}};
  msvc_registry_set_t *set;
  uint32_t ttl;
  bool neg;
  char why[256];

  nx(0, "_https._tcp.api.d", 33);
  nx(1, "_http._tcp.api.d", 33);
  dnsb_begin(&ans[2], 1, 3, "api.d", 1, 1, 0, 0); /* NXDOMAIN, yet a record */
  dnsb_a(&ans[2], "api.d", 9, "10.0.0.7");
  nodata(3, "api.d", 28);
  cr_assert_eq(build(r, &set, &ttl, &neg, why, sizeof(why)), MSVC_OK, "%s",
               why);
  cr_assert_eq(msvc_registry_set_count(set), 0);
  cr_assert(neg, "a name that does not exist has no instances");
  msvc_registry_set_unref(set);
}

Test(dns_answer, servfail_before_the_winner_is_a_failure) {
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES] = {{0}};
  msvc_registry_set_t *set;
  uint32_t ttl;
  bool neg;
  char why[256];

  nx(0, "_https._tcp.api.d", 33);
  dnsb_begin(&ans[1], 1, 2, "_http._tcp.api.d", 33, 0, 0, 0);
  dnsb_begin(&ans[2], 1, 0, "api.d", 1, 1, 0, 0);
  dnsb_a(&ans[2], "api.d", 9, "10.0.0.7");
  nodata(3, "api.d", 28);
  cr_assert_eq(build(r, &set, &ttl, &neg, why, sizeof(why)), MSVC_EIO);
  cr_assert_null(set);
  cr_assert_not_null(strstr(why, "SERVFAIL"), "%s", why);
  cr_assert_not_null(strstr(why, "_http._tcp"), "%s", why);
}

Test(dns_answer, timeout_of_a_lookup_is_a_failure) {
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES] = {{0}};
  msvc_registry_set_t *set;
  uint32_t ttl;
  bool neg;
  char why[256];

  nx(0, "_https._tcp.api.d", 33);
  nx(1, "_http._tcp.api.d", 33);
  nx(2, "api.d", 1);
  r[3].err = MSVC_ETIMEDOUT;
  cr_assert_eq(build(r, &set, &ttl, &neg, why, sizeof(why)), MSVC_ETIMEDOUT);
  cr_assert_not_null(strstr(why, "AAAA"), "%s", why);
}

/* Each crafted answer is wrong in one way; each must be refused cleanly
 * with a log-ready reason. */
Test(dns_answer, malformed_answers_are_refused) {
  static const char *const cases[] = {"short", "loop",    "forward", "rdlen",
                                      "a_len", "srv_len", "label",   "query"};
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    msvc__dns_reply_t r[MSVC__DNS_NQUERIES] = {{0}};
    msvc_registry_set_t *set;
    msvc__dns_msg_t msg;
    uint32_t ttl;
    bool neg;
    char why[256];
    dnsb_t *d = &ans[1];

    nx(0, "_https._tcp.api.d", 33);
    nodata(2, "api.d", 1);
    nodata(3, "api.d", 28);
    dnsb_begin(d, 1, 0, "_http._tcp.api.d", 33, 1, 0, 0);
    if (strcmp(cases[i], "short") == 0) {
      d->len = 7;
    } else if (strcmp(cases[i], "loop") == 0) {
      /* An answer whose owner points at itself. */
      size_t at = d->len;
      d->b[d->len++] = 0xC0 | (uint8_t)(at >> 8);
      d->b[d->len++] = (uint8_t)at;
      dnsb_u16(d, 33);
    } else if (strcmp(cases[i], "forward") == 0) {
      d->b[d->len++] = 0xC0;
      d->b[d->len++] = 0xFF;
    } else if (strcmp(cases[i], "rdlen") == 0) {
      dnsb_rr(d, "x.d", 33, 5, 600);
    } else if (strcmp(cases[i], "a_len") == 0) {
      dnsb_rr(d, "x.d", 1, 5, 3);
      dnsb_u16(d, 1);
      d->b[d->len++] = 1;
    } else if (strcmp(cases[i], "srv_len") == 0) {
      dnsb_srv(d, "_http._tcp.api.d", 5, 0, 1, 80, "t.d");
      d->b[d->len - 12]++; /* rdlength one past the target */
      d->b[d->len++] = 0;
    } else if (strcmp(cases[i], "label") == 0) {
      d->b[d->len++] = 0x80; /* reserved label type */
    } else {
      d->b[2] &= 0x7F; /* a query, not a response */
    }
    cr_assert_neq(msvc__dns_parse(d->b, d->len, &msg), MSVC_OK, "%s", cases[i]);
    cr_assert_eq(build(r, &set, &ttl, &neg, why, sizeof(why)), MSVC_EPROTO,
                 "%s", cases[i]);
    cr_assert_not_null(strstr(why, "malformed"), "%s: %s", cases[i], why);
  }
}

Test(dns_answer, oversized_answer_is_refused) {
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES] = {{0}};
  msvc_registry_set_t *set;
  uint32_t ttl;
  bool neg;
  char why[256];
  unsigned i, n = MSVC__DNS_MAX_RR + 1;

  nx(0, "_https._tcp.api.d", 33);
  nodata(2, "api.d", 1);
  nodata(3, "api.d", 28);
  dnsb_begin(&ans[1], 1, 0, "_http._tcp.api.d", 33, n, 0, 0);
  for (i = 0; i < n; i++) {
    /* Compressed owner: a pointer to the question's name. */
    dnsb_t *d = &ans[1];
    d->b[d->len++] = 0xC0;
    d->b[d->len++] = 12;
    dnsb_u16(d, 33);
    dnsb_u16(d, 1);
    dnsb_u32(d, 5);
    dnsb_u16(d, 8);
    dnsb_u16(d, 0);
    dnsb_u16(d, 1);
    dnsb_u16(d, (unsigned)(1000 + i % 60000));
    d->b[d->len++] = 0xC0;
    d->b[d->len++] = 12;
  }
  cr_assert_eq(build(r, &set, &ttl, &neg, why, sizeof(why)), MSVC_ETOOLARGE);
  cr_assert_not_null(strstr(why, "oversized"), "%s", why);
}

Test(dns_answer, compressed_names_are_followed) {
  msvc__dns_msg_t msg;
  dnsb_t *d = &ans[0];

  dnsb_begin(d, 1, 0, "api.d", 1, 1, 0, 0);
  d->b[d->len++] = 0xC0;
  d->b[d->len++] = 12;
  dnsb_u16(d, 1);
  dnsb_u16(d, 1);
  dnsb_u32(d, 0x80000001u); /* top bit: reads as 0 */
  dnsb_u16(d, 4);
  dnsb_u32(d, 0x0A000001u);
  cr_assert_eq(msvc__dns_parse(d->b, d->len, &msg), MSVC_OK);
  cr_assert_eq(msg.nrr, 1);
  cr_assert_str_eq(msg.rr[0].owner, "api.d");
  cr_assert_str_eq(msg.rr[0].target, "10.0.0.1");
  cr_assert_eq(msg.rr[0].ttl, 0);
  msvc__dns_msg_free(&msg);
}

Test(dns_answer, uri_parameters) {
  msvc__dns_config_t c;
  char why[300];

  cr_assert_eq(msvc__dns_config_parse("?domain=svc.cluster.local.", &c, why,
                                      sizeof(why)),
               MSVC_OK);
  cr_assert_str_eq(c.domain, "svc.cluster.local");
  cr_assert_eq(c.port, 80);
  cr_assert_eq(c.min_ttl_ms, 1000);
  cr_assert_eq(c.max_ttl_ms, 60000);
  cr_assert_str_eq(c.server, "");
  cr_assert_eq(msvc__dns_config_parse("?domain=d&server=127.0.0.1:5353&port="
                                      "8080&min_ttl_ms=100&max_ttl_ms=500&"
                                      "timeout_ms=200&tries=2",
                                      &c, why, sizeof(why)),
               MSVC_OK, "%s", why);
  cr_assert_str_eq(c.server, "127.0.0.1:5353");
  cr_assert_eq(c.port, 8080);
  cr_assert_eq(c.tries, 2);
  cr_assert_eq(
      msvc__dns_config_parse("?domain=d&server=[::1]:53", &c, why, sizeof(why)),
      MSVC_OK);
  cr_assert_eq(msvc__dns_config_parse("", &c, why, sizeof(why)), MSVC_EURI);
  cr_assert_eq(
      msvc__dns_config_parse("?server=127.0.0.1:53", &c, why, sizeof(why)),
      MSVC_EURI);
  cr_assert_not_null(strstr(why, "domain"));
  cr_assert_eq(msvc__dns_config_parse("?domain=a..b", &c, why, sizeof(why)),
               MSVC_EURI);
  cr_assert_eq(msvc__dns_config_parse("?domain=d&server=dns.example:53", &c,
                                      why, sizeof(why)),
               MSVC_EURI);
  cr_assert_not_null(strstr(why, "numeric"));
  cr_assert_eq(msvc__dns_config_parse("?domain=d&ttl=5", &c, why, sizeof(why)),
               MSVC_EURI);
  cr_assert_not_null(strstr(why, "unknown"));
  cr_assert_eq(msvc__dns_config_parse("?domain=d&min_ttl_ms=900&max_ttl_ms="
                                      "800",
                                      &c, why, sizeof(why)),
               MSVC_EURI);
  cr_assert_eq(msvc__dns_config_parse("?domain=d&port=0", &c, why, sizeof(why)),
               MSVC_EURI);
}

Test(dns_answer, check_uri_knows_dns) {
  char err[768];
  int rc = msvc_registry_check_uri("dns://?domain=svc.cluster.local", err,
                                   sizeof(err));
#ifdef MSVC_HAVE_CARES
  cr_assert_eq(rc, MSVC_OK, "%s", err);
#else
  cr_assert_eq(rc, MSVC_ENOTSUP);
  cr_assert_not_null(strstr(err, "built without DNS support"), "%s", err);
#endif
  cr_assert_eq(
      msvc_registry_check_uri("dns://svc.cluster.local", err, sizeof(err)),
      MSVC_EURI);
  cr_assert_not_null(strstr(err, "dns://?domain=D"), "%s", err);
}
