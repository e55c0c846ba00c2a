/*
 * Helpers shared by the example services: environment, ids, time, random
 * bytes, request validation and error answers. Nothing here is libmsvc
 * API; it is the small glue every real service ends up writing.
 */
#ifndef EX_H
#define EX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <msvc/http.h>
#include <msvc/service.h>

/* The largest id or amount the services accept and return: cJSON prints
 * numbers with 15 significant digits, so integers up to 10^15 - 1 survive
 * a round trip through any JSON client unchanged (and stay below 2^53). */
#define EX_JSON_INT_MAX INT64_C(999999999999999)

/* Room for a validation message such as "items[99].unit_price_cents: ...". */
#define EX_MSG_MAX 160

/* The value of an environment variable, or def when it is unset or empty. */
const char *ex_env(const char *name, const char *def);

/* What user-service signs with by default, and where it publishes its keys
 * (a service name, found through discovery). */
#define EX_JWKS_URL "http://user-service/.well-known/jwks.json"
#define EX_JWT_ISSUER "user-service"
#define EX_JWT_AUDIENCE "msvc-demo"

/* For services that verify tokens: sets the JWT options to user-service's
 * key set, issuer and audience, each only where its MSVC_JWT_* variable is
 * unset, so that the environment still decides. */
void ex_jwt_defaults(msvc_service_opts_t *opts);

/* Parses a whole positive decimal id ("1".."999999999999999", no sign, no
 * leading zero); false otherwise. */
bool ex_parse_id(const char *s, int64_t *out);

/* Parses a whole decimal in [lo, hi] ("0" allowed, no sign); false
 * otherwise. */
bool ex_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* Seconds since the Unix epoch, from the wall clock. */
int64_t ex_now_s(void);

/* Formats unix seconds as RFC 3339 UTC ("2026-01-02T03:04:05Z"). */
void ex_rfc3339(int64_t unix_s, char out[32]);

/* Fills buf with len bytes from the kernel's CSPRNG; 0 or -errno. */
int ex_random(void *buf, size_t len);

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
void ex_hex(const unsigned char *in, size_t len, char *out);

/* Number of UTF-8 code points in s, or -1 when s is not valid UTF-8 or
 * holds a control character. */
long ex_utf8_chars(const char *s);

/*
 * Validation of a parsed JSON object. Each helper returns true when the
 * field is present and valid, else false with msg set to
 * "<where><field>: <why>" (where is a prefix such as "items[3]." or "").
 */
bool ex_json_string(const cJSON *obj, const char *where, const char *field,
                    long min_chars, long max_chars, const char **out, char *msg,
                    size_t msglen);
bool ex_json_int(const cJSON *obj, const char *where, const char *field,
                 int64_t min, int64_t max, int64_t *out, char *msg, size_t msglen);

/* Adds an integer member (exact below EX_JSON_INT_MAX); false on ENOMEM. */
bool ex_json_add_int(cJSON *obj, const char *name, int64_t v);

/*
 * Reports a failed msvc_service_new() on stderr as one line ("<program>:
 * <what went wrong>") and returns the exit status: 2 for a bad
 * configuration, 1 for anything else.
 */
int ex_new_failed(const char *program, int rc, const char *err);

/* Answers 400 INVALID_ARGUMENT with msg. */
void ex_res_invalid(msvc_http_res_t *res, const char *msg);

/* Answers 500 INTERNAL without detail (the detail goes to the log). */
void ex_res_internal(msvc_http_res_t *res);

/* Sends doc with status, or 500 when doc is NULL (out of memory); frees
 * doc either way. */
void ex_res_json(msvc_http_res_t *res, int status, cJSON *doc);

/* Answers 200 with doc (taking it), Cache-Control: cache_control and an
 * ETag derived from the body; 304 without a body when req's If-None-Match
 * names that ETag. */
void ex_res_json_cacheable(msvc_http_req_t *req, msvc_http_res_t *res, cJSON *doc,
                           const char *cache_control);

#endif /* EX_H */
