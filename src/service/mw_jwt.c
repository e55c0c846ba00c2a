/*
 * JWT authentication middleware.
 *
 * The before-hook looks at the matched route's flags; for a protected route
 * it parses the Authorization header, verifies the token with a verifier of
 * its own (the verified-token cache on by default), counts the result and
 * either attaches the claims to the request or answers 401. The counter's
 * children are fetched once, at creation, one per `result` value, so a
 * request costs no label lookup.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msvc/jwks.h>
#include <msvc/log.h>
#include <msvc/middleware.h>
#include <msvc/work.h>

#include "msvc-internal.h"

#define LOG_COMPONENT "jwt"

/* Attribute key: a string with static storage, as msvc_http_req_set()
 * borrows it. */
static const char claims_key[] = "msvc.mw.jwt.claims";

/* What a client is told for each outcome; the labels themselves come from
 * the one list in msvc/jwt.h. */
static const char *const messages[MSVC_JWT_RESULT_COUNT] = {
    [MSVC_JWT_RESULT_OK] = NULL,
    [MSVC_JWT_RESULT_MISSING] = "Authentication is required: send Authorization: Bearer "
                                "<token>.",
    [MSVC_JWT_RESULT_MALFORMED] = "The token is malformed.",
    [MSVC_JWT_RESULT_EXPIRED] = "The token has expired.",
    [MSVC_JWT_RESULT_NOT_YET_VALID] = "The token is not valid yet.",
    [MSVC_JWT_RESULT_MISSING_EXP] = "The token has no expiry time (exp).",
    [MSVC_JWT_RESULT_BAD_SIGNATURE] = "The token signature is not valid.",
    [MSVC_JWT_RESULT_BAD_ISSUER] = "The token issuer is not accepted.",
    [MSVC_JWT_RESULT_BAD_AUDIENCE] = "The token audience is not accepted.",
    [MSVC_JWT_RESULT_UNKNOWN_KID] = "The token was signed with an unknown key.",
    [MSVC_JWT_RESULT_ALG_NOT_ALLOWED] = "The token algorithm is not allowed.",
};

struct msvc_mw_jwt_s {
  msvc_jwt_verifier_t *verifier;
  msvc_jwt_keyset_t *keyset;
  bool own_keyset;
  uint32_t route_flags;
  char *challenge; /* "Bearer" or "Bearer realm=\"...\"" */
  msvc_jwks_fetcher_t *fetcher; /* with jwks_url */
  msvc_metrics_counter_t *count[MSVC_JWT_RESULT_COUNT];
  /* Public-key checks on a worker pool (opts.work). The middleware belongs
   * to one loop, so these are touched on that loop only. */
  msvc_work_t *(*work)(const msvc_http_req_t *req, void *arg);
  void *work_arg;
  unsigned jobs;  /* checks handed to a pool, their done not yet run */
  bool released;  /* msvc_mw_jwt_free() ran: the last job's done frees */
};

void msvc_mw_jwt_opts_init(msvc_mw_jwt_opts_t *o) {
  if (o == NULL)
    return;
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  msvc_jwt_verify_opts_init(&o->verify);
  o->verify.cache_size = 1024;
  o->verify.neg_cache_size = 1024;
  o->verify.require_exp = true;
  o->route_flags = MSVC_HTTP_ROUTE_AUTH;
}

/* ---- environment ----------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int env_fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  va_list ap;

  if (err != NULL && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* A service name as the registry accepts it. */
static bool service_name(const char *s) {
  size_t i;

  if (s[0] == '\0' || s[0] == '.')
    return false;
  for (i = 0; s[i] != '\0'; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
      return false;
  return true;
}

/* A DNS host name: dot-separated labels of letters, digits and '-'. */
static bool dns_name(const char *s) {
  size_t i, label = 0;

  if (s[0] == '\0' || s[0] == '.' || s[0] == '-')
    return false;
  for (i = 0; s[i] != '\0'; i++) {
    if (s[i] == '.') {
      if (label == 0)
        return false;
      label = 0;
    } else if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
               (s[i] >= '0' && s[i] <= '9') || s[i] == '-') {
      if (++label > 63)
        return false;
    } else {
      return false;
    }
  }
  return i <= 253;
}

/* http://HOST[:PORT]/PATH with HOST an IP literal or localhost, or a
 * service name when a fetch hook will resolve it (names=true);
 * https://HOST[:PORT]/PATH with HOST an IP literal or a DNS name, fetched
 * directly (the certificate is checked against that name). */
static int check_jwks_url(const char *url, bool names) {
  char host[256];
  unsigned char addr[16];
  const char *p, *end;
  bool tls = strncasecmp(url, "https://", 8) == 0;
  size_t n;

  if (!tls && strncasecmp(url, "http://", 7) != 0)
    return MSVC_EINVAL;
  p = url + (tls ? 8 : 7);
  if (*p == '[') {
    end = strchr(++p, ']');
    if (end == NULL)
      return MSVC_EINVAL;
  } else {
    end = p + strcspn(p, ":/");
  }
  n = (size_t)(end - p);
  if (n == 0 || n >= sizeof(host))
    return MSVC_EINVAL;
  memcpy(host, p, n);
  host[n] = '\0';
  if (strcasecmp(host, "localhost") != 0 && uv_inet_pton(AF_INET, host, addr) != 0 &&
      uv_inet_pton(AF_INET6, host, addr) != 0 && !(tls && dns_name(host)) &&
      !(!tls && names && service_name(host)))
    return MSVC_EINVAL;
  p = end + (*end == ']');
  if (*p == ':') {
    unsigned long port = 0;

    for (p++, n = 0; *p >= '0' && *p <= '9' && n < 6; p++, n++)
      port = port * 10 + (unsigned long)(*p - '0');
    if (n == 0 || port == 0 || port > 65535)
      return MSVC_EINVAL;
  }
  return *p == '/' ? MSVC_OK : MSVC_EINVAL;
}

int msvc_mw_jwt_opts_env(msvc_mw_jwt_opts_t *o, char *err, size_t errlen) {
  const char *v;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (o == NULL || o->size < sizeof(*o))
    return MSVC_EINVAL;
  if ((v = getenv("MSVC_JWT_JWKS_URL")) != NULL) {
    int rc = check_jwks_url(v, o->jwks_get != NULL);

    if (rc != MSVC_OK)
      return env_fail(err, errlen, rc,
                      "MSVC_JWT_JWKS_URL: bad value '%.200s'; expected "
                      "https://HOST[:PORT]/PATH (HOST a DNS name or an IP address; "
                      "the certificate is verified) or http://HOST[:PORT]/PATH with "
                      "HOST %s",
                      v,
                      o->jwks_get != NULL
                          ? "an IP address, localhost or a service name"
                          : "an IP address or localhost (service names are not "
                            "resolved here)");
    if (getenv("MSVC_JWT_JWKS_FILE") != NULL)
      return env_fail(err, errlen, MSVC_EINVAL,
                      "MSVC_JWT_JWKS_URL: MSVC_JWT_JWKS_FILE is set too; set only one "
                      "of them");
    o->jwks_url = v;
  }
  if ((v = getenv("MSVC_JWT_JWKS_FILE")) != NULL) {
    msvc_jwt_keyset_t *ks = NULL;
    int rc;

    if (*v == '\0')
      return env_fail(err, errlen, MSVC_EINVAL,
                      "MSVC_JWT_JWKS_FILE: empty; expected the path of a JWK Set "
                      "file");
    /* Load it once here so that a bad file is reported against its
     * variable, with the reason. */
    if ((rc = msvc_jwt_keyset_new(&ks)) != MSVC_OK)
      return rc;
    rc = msvc_jwt_keyset_load_jwks_file(ks, v);
    msvc_jwt_keyset_free(ks);
    if (rc == MSVC_ENOMEM)
      return rc;
    if (rc != MSVC_OK) {
      char why[256];

      snprintf(why, sizeof(why), "%s",
               rc == MSVC_EJWT_BAD_KEY && *msvc_jwt_errmsg() != '\0' ? msvc_jwt_errmsg()
                                                                   : msvc_strerror(rc));
      return env_fail(err, errlen, MSVC_EINVAL,
                      "MSVC_JWT_JWKS_FILE: cannot load '%.200s' (%.200s); expected a readable "
                      "JWK Set file with at least one usable signing key",
                      v, why);
    }
    o->jwks_file = v;
  }
  if ((v = getenv("MSVC_JWT_ISSUER")) != NULL) {
    if (*v == '\0')
      return env_fail(err, errlen, MSVC_EINVAL,
                      "MSVC_JWT_ISSUER: empty; expected the exact 'iss' value tokens "
                      "must carry, or leave it unset for no issuer check");
    o->verify.issuer = v;
  }
  if ((v = getenv("MSVC_JWT_AUDIENCE")) != NULL) {
    if (*v == '\0')
      return env_fail(err, errlen, MSVC_EINVAL,
                      "MSVC_JWT_AUDIENCE: empty; expected an audience that tokens' "
                      "'aud' must contain, or leave it unset for no audience "
                      "check");
    o->audience = v;
  }
  if ((v = getenv("MSVC_JWT_REQUIRE_EXP")) != NULL) {
    if (strcmp(v, "true") == 0)
      o->verify.require_exp = true;
    else if (strcmp(v, "false") == 0)
      o->verify.require_exp = false;
    else
      return env_fail(err, errlen, MSVC_EINVAL,
                      "MSVC_JWT_REQUIRE_EXP: bad value '%.64s'; expected true (the "
                      "default: tokens without 'exp' are refused) or false",
                      v);
  }
  if ((v = getenv("MSVC_JWT_LEEWAY_S")) != NULL) {
    unsigned long n = 0;
    const char *p;
    bool ok = *v != '\0' && strlen(v) <= 5;

    for (p = v; ok && *p != '\0'; p++) {
      if (*p < '0' || *p > '9')
        ok = false;
      else
        n = n * 10 + (unsigned long)(*p - '0');
    }
    if (!ok || n > 86400)
      return env_fail(err, errlen, MSVC_EINVAL,
                      "MSVC_JWT_LEEWAY_S: bad value '%.64s'; expected a whole number "
                      "of seconds from 0 to 86400 (default 30)",
                      v);
    o->verify.leeway_s = (uint32_t)n;
  }
  return MSVC_OK;
}

/* ---- requests ----------------------------------------------------------- */

/* Answers 401 with a challenge; description NULL for "no credentials". */
static int refuse(msvc_mw_jwt_t *m, msvc_http_res_t *res, const char *description,
                  const char *message) {
  char hdr[512];

  if (description == NULL)
    snprintf(hdr, sizeof(hdr), "%s", m->challenge);
  else
    snprintf(hdr, sizeof(hdr), "%s%serror=\"invalid_token\", error_description=\"%s\"",
             m->challenge, strchr(m->challenge, ' ') != NULL ? ", " : " ", description);
  /* If this fails for lack of memory, msvc_http_res_error() adds a
   * challenge of its own. */
  msvc_http_res_header(res, "WWW-Authenticate", hdr);
  msvc_http_res_error(res, 401, "UNAUTHENTICATED", message);
  return MSVC_HTTP_STOP;
}

static void count(msvc_mw_jwt_t *m, msvc_jwt_result_t r) {
  if (m->count[r] != NULL)
    msvc_metrics_counter_inc(m->count[r]);
}

static void claims_release(void *p) {
  msvc_jwt_claims_free(p);
}

static bool is_space(char c) {
  return c == ' ' || c == '\t';
}

static int verdict(msvc_mw_jwt_t *m, msvc_http_req_t *req, msvc_http_res_t *res, int rc,
                   msvc_jwt_claims_t *claims, const char *detail);

/* ---- public-key checks on a worker pool ------------------------------------ */

typedef struct check_job_s {
  msvc_mw_jwt_t *m;
  size_t len;
  int rc;
  msvc_jwt_claims_t *claims;
  char detail[256];
  char token[]; /* a copy: the request's header may move */
} check_job_t;

static void jwt_destroy(msvc_mw_jwt_t *m);

/* On a pool thread. The verifier is thread-safe; the refusal detail is
 * per thread, so it is copied here. */
static void check_work(void *data) {
  check_job_t *j = data;

  j->rc = msvc_jwt_verify(j->m->verifier, j->token, j->len, &j->claims);
  snprintf(j->detail, sizeof(j->detail), "%s", msvc_jwt_errmsg());
}

/* Back on the loop. A job that did not run, or whose request went away, is
 * answered by msvc_work_submit_req() itself. */
static void check_done(msvc_http_req_t *req, void *data, int status) {
  check_job_t *j = data;
  msvc_mw_jwt_t *m = j->m;
  msvc_jwt_claims_t *claims = j->claims;

  j->claims = NULL;
  if (status == MSVC_OK && !msvc_http_req_cancelled(req)) {
    if (m->released) {
      msvc_http_res_header(msvc_http_req_res(req), "Connection", "close");
      msvc_http_res_error(msvc_http_req_res(req), 503, "SHUTTING_DOWN",
                          "The server is shutting down.");
    } else if (verdict(m, req, msvc_http_req_res(req), j->rc, claims, j->detail) ==
               MSVC_HTTP_NEXT) {
      msvc_http_req_resume(req);
    }
    claims = NULL; /* verdict() took them */
  }
  msvc_jwt_claims_free(claims);
  msvc__free(j);
  if (--m->jobs == 0 && m->released)
    jwt_destroy(m);
}

static int check_on_pool(msvc_mw_jwt_t *m, msvc_http_req_t *req, const char *tok,
                         size_t toklen) {
  msvc_work_t *pool = m->work(req, m->work_arg);
  check_job_t *j;
  msvc_jwt_claims_t *claims = NULL;
  int rc;

  if (pool == NULL) {
    rc = msvc_jwt_verify(m->verifier, tok, toklen, &claims);
    return verdict(m, req, msvc_http_req_res(req), rc, claims, msvc_jwt_errmsg());
  }
  if ((j = msvc__calloc(1, sizeof(*j) + toklen + 1)) == NULL) {
    msvc_http_res_error(msvc_http_req_res(req), 503, "UNAVAILABLE",
                        "The server is out of memory.");
    return MSVC_HTTP_STOP;
  }
  j->m = m;
  j->len = toklen;
  memcpy(j->token, tok, toklen);
  /* On failure the request has been answered (503 OVERLOADED when the
   * pool's queue is full, SHUTTING_DOWN when it drains). */
  if (msvc_work_submit_req(pool, req, 0, check_work, check_done, j) != MSVC_OK) {
    msvc__free(j);
    return MSVC_HTTP_STOP;
  }
  m->jobs++;
  return MSVC_HTTP_PAUSE;
}

/* ---- the before-hook ---------------------------------------------------------- */

static int jwt_before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_mw_jwt_t *m = data;
  const msvc_http_route_opts_t *ro = msvc_http_req_route_opts(req);
  const char *auth = NULL, *name, *value, *tok;
  msvc_jwt_claims_t *claims = NULL;
  size_t i, n, len, toklen;
  int rc;

  if (ro == NULL || (ro->flags & m->route_flags) == 0)
    return MSVC_HTTP_NEXT;
  /* Exactly one Authorization field: with two, which one counts would be a
   * guess. */
  n = msvc_http_req_header_count(req);
  for (i = 0; i < n; i++) {
    if (msvc_http_req_header_at(req, i, &name, &value) != MSVC_OK ||
        msvc__strcasecmp(name, "Authorization") != 0)
      continue;
    if (auth != NULL) {
      count(m, MSVC_JWT_RESULT_MALFORMED);
      return refuse(m, res, "more than one Authorization header",
                    "Send exactly one Authorization header.");
    }
    auth = value;
  }
  /* No Bearer credentials at all (none, or another scheme): RFC 6750 §3.1
   * wants the bare challenge, without an error code. */
  if (auth == NULL || msvc__strncasecmp(auth, "Bearer", 6) != 0 ||
      (auth[6] != '\0' && !is_space(auth[6]))) {
    count(m, MSVC_JWT_RESULT_MISSING);
    return refuse(m, res, NULL, messages[MSVC_JWT_RESULT_MISSING]);
  }
  len = strnlen(auth, MSVC_MW_JWT_HEADER_MAX + 1);
  if (len > MSVC_MW_JWT_HEADER_MAX) {
    count(m, MSVC_JWT_RESULT_MALFORMED);
    return refuse(m, res, "the token is too long", "The token is too long.");
  }
  /* "Bearer" 1*SP token: one space, then one token with no blanks in it. */
  tok = auth + 6;
  if (*tok == ' ')
    tok++;
  toklen = strlen(tok);
  if (*tok == '\0' || auth[6] != ' ' || strpbrk(tok, " \t") != NULL) {
    count(m, MSVC_JWT_RESULT_MALFORMED);
    return refuse(m, res, "expected Bearer followed by one token",
                  "The Authorization header must be Bearer followed by one token.");
  }
  if (m->work != NULL) {
    rc = msvc__jwt_verify_inline(m->verifier, tok, toklen, &claims);
    if (rc == MSVC_EAGAIN)
      return check_on_pool(m, req, tok, toklen);
  } else {
    rc = msvc_jwt_verify(m->verifier, tok, toklen, &claims);
  }
  return verdict(m, req, res, rc, claims, msvc_jwt_errmsg());
}

/* What a verification's result means for the request: NEXT with the claims
 * attached, or STOP with the request answered. Takes the claims. */
static int verdict(msvc_mw_jwt_t *m, msvc_http_req_t *req, msvc_http_res_t *res, int rc,
                   msvc_jwt_claims_t *claims, const char *detail) {
  msvc_jwt_result_t result = msvc_jwt_result_of(rc);

  if (result == MSVC_JWT_RESULT_COUNT) {
    /* Not a verdict on the token (memory): not counted, not the client's
     * fault. */
    msvc_http_res_error(res, 503, "UNAVAILABLE", "The token could not be checked now.");
    return MSVC_HTTP_STOP;
  }
  count(m, result);
  if (rc == MSVC_EJWT_UNKNOWN_KID && msvc_jwt_keyset_count(m->keyset) == 0) {
    /* No key at all yet (the first JWK Set fetch has not completed): the
     * token may well be good, and another instance may take it now. */
    msvc_http_res_header(res, "Retry-After", "1");
    msvc_http_res_error(res, 503, "UNAVAILABLE",
                        "The keys to check tokens are not loaded yet.");
    return MSVC_HTTP_STOP;
  }
  if (rc != MSVC_OK) {
    MSVC_LOG_D(LOG_COMPONENT, "token refused (%s): %s", msvc_jwt_result_label(result),
               detail);
    return refuse(m, res, messages[result], messages[result]);
  }
  /* On failure msvc_http_req_set() has already released the claims. */
  if (msvc_http_req_set(req, claims_key, claims, claims_release) != MSVC_OK) {
    msvc_http_res_error(res, 503, "UNAVAILABLE", "The server is out of memory.");
    return MSVC_HTTP_STOP;
  }
  return MSVC_HTTP_NEXT;
}

const msvc_jwt_claims_t *msvc_mw_jwt_claims(const msvc_http_req_t *req) {
  return req != NULL ? msvc_http_req_get(req, claims_key) : NULL;
}

const char *msvc_mw_jwt_subject(const msvc_http_req_t *req) {
  const msvc_jwt_claims_t *c = msvc_mw_jwt_claims(req);

  return c != NULL ? msvc_jwt_claims_string(c, "sub") : NULL;
}

/* ---- life cycle ---------------------------------------------------------- */

static int make_challenge(msvc_mw_jwt_t *m, const char *realm) {
  msvc__buf_t b;
  const char *p;

  msvc__buf_init(&b, 64);
  msvc__buf_puts(&b, "Bearer");
  if (realm != NULL) {
    msvc__buf_puts(&b, " realm=\"");
    for (p = realm; *p != '\0' && b.len < 200; p++)
      if ((unsigned char)*p >= 0x20 && *p != '"' && *p != '\\' && *p != 0x7f)
        msvc__buf_putc(&b, *p);
    msvc__buf_putc(&b, '"');
  }
  if (b.err != MSVC_OK) {
    msvc__buf_free(&b);
    return MSVC_ENOMEM;
  }
  m->challenge = msvc__strdup(b.data);
  msvc__buf_free(&b);
  return m->challenge != NULL ? MSVC_OK : MSVC_ENOMEM;
}

static int register_counter(msvc_mw_jwt_t *m, msvc_metrics_registry_t *reg) {
  static const char *const labels[] = {"result"};
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  size_t i;
  int rc;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_jwt_verifications_total";
  fo.help = "JWT verifications, by result.";
  fo.label_names = labels;
  fo.label_count = 1;
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &fam)) != MSVC_OK)
    return rc;
  for (i = 0; i < MSVC_JWT_RESULT_COUNT; i++) {
    const char *label = msvc_jwt_result_label((msvc_jwt_result_t)i);

    if ((rc = msvc_metrics_counter_get(fam, &label, 1, &m->count[i])) != MSVC_OK)
      return rc;
  }
  return MSVC_OK;
}

static void jwt_destroy(msvc_mw_jwt_t *m) {
  /* After close the fetcher no longer touches the key set, so the set may
   * go now; the fetcher's handles are released later by the loop. */
  msvc_jwks_fetcher_close(m->fetcher, NULL, NULL);
  msvc_jwt_verifier_free(m->verifier);
  if (m->own_keyset)
    msvc_jwt_keyset_free(m->keyset);
  msvc__free(m->challenge);
  msvc__free(m);
}

static int make_verifier(msvc_mw_jwt_t *m, const msvc_mw_jwt_opts_t *o) {
  msvc_jwt_verify_opts_t vo = o->verify;
  const char **auds = NULL;
  int rc;

  if (o->audience != NULL) {
    size_t i;

    if (vo.n_audiences > 0 && vo.audiences == NULL)
      return MSVC_EINVAL;
    auds = msvc__calloc(vo.n_audiences + 1, sizeof(*auds));
    if (auds == NULL)
      return MSVC_ENOMEM;
    for (i = 0; i < vo.n_audiences; i++)
      auds[i] = vo.audiences[i];
    auds[vo.n_audiences] = o->audience;
    vo.audiences = auds;
    vo.n_audiences++;
  }
  rc = msvc_jwt_verifier_new(&vo, m->keyset, &m->verifier);
  msvc__free(auds);
  return rc;
}

static int start_fetcher(msvc_mw_jwt_t *m, msvc_http_server_t *srv,
                         const msvc_mw_jwt_opts_t *o) {
  msvc_jwks_opts_t jo;

  msvc_jwks_opts_init(&jo);
  jo.url = o->jwks_url;
  jo.keyset = m->keyset;
  jo.metrics = o->registry != NULL ? o->registry : msvc_metrics_default_registry();
  /* An https:// URL is fetched directly, so that its certificate is
   * checked against its own host: the hook only resolves service names. */
  if (strncasecmp(o->jwks_url, "https://", 8) != 0) {
    jo.get = o->jwks_get;
    jo.get_cancel = o->jwks_get_cancel;
    jo.get_data = o->jwks_get_data;
  }
  jo.tls = o->jwks_tls;
  return msvc_jwks_fetcher_new(o->loop != NULL ? o->loop : msvc_http_server_loop(srv),
                               &jo, &m->fetcher);
}

int msvc_mw_jwt_new(msvc_http_server_t *srv, const msvc_mw_jwt_opts_t *opts,
                    msvc_mw_jwt_t **out) {
  msvc_mw_jwt_opts_t o;
  msvc_http_middleware_t mw = {"jwt", jwt_before, NULL, NULL};
  msvc_mw_jwt_t *m;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (srv == NULL || out == NULL || (opts != NULL && opts->size < sizeof(*opts)))
    return MSVC_EINVAL;
  if (opts != NULL)
    o = *opts;
  else
    msvc_mw_jwt_opts_init(&o);
  if (o.route_flags == 0)
    return MSVC_EINVAL;
  m = msvc__calloc(1, sizeof(*m));
  if (m == NULL)
    return MSVC_ENOMEM;
  m->route_flags = o.route_flags;
  m->keyset = o.keyset;
  m->work = o.work;
  m->work_arg = o.work_arg;
  rc = make_challenge(m, o.realm);
  if (rc == MSVC_OK && m->keyset == NULL) {
    rc = msvc_jwt_keyset_new(&m->keyset);
    m->own_keyset = rc == MSVC_OK;
  }
  if (rc == MSVC_OK && o.jwks_file != NULL)
    rc = msvc_jwt_keyset_load_jwks_file(m->keyset, o.jwks_file);
  if (rc == MSVC_OK)
    rc = make_verifier(m, &o);
  if (rc == MSVC_OK)
    rc = register_counter(m, o.registry);
  if (rc == MSVC_OK && o.jwks_url != NULL)
    rc = start_fetcher(m, srv, &o);
  mw.data = m;
  if (rc == MSVC_OK)
    rc = msvc_http_server_use(srv, &mw);
  if (rc != MSVC_OK) {
    jwt_destroy(m);
    return rc;
  }
  *out = m;
  return MSVC_OK;
}

void msvc_mw_jwt_free(msvc_mw_jwt_t *m) {
  if (m == NULL)
    return;
  /* Checks still on a pool need the verifier: the last one's done frees. */
  if (m->jobs > 0)
    m->released = true;
  else
    jwt_destroy(m);
}

msvc_jwt_keyset_t *msvc_mw_jwt_keyset(const msvc_mw_jwt_t *m) {
  return m != NULL ? m->keyset : NULL;
}

msvc_jwt_verifier_t *msvc_mw_jwt_verifier(const msvc_mw_jwt_t *m) {
  return m != NULL ? m->verifier : NULL;
}
