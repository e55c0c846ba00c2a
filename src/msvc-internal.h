/*
 * Helpers shared across libmsvc's source files. Never installed; nothing here
 * is API. Cross-file names carry the msvc__ prefix.
 */
#ifndef MSVC_INTERNAL_H
#define MSVC_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <msvc/common.h>
#include <msvc/error.h>

/* ---- allocation ---------------------------------------------------------
 * Every allocation goes through these so that the allocator can be swapped
 * in one place and so that buffers handed to callers can be released with
 * msvc_free(). */
void *msvc__malloc(size_t size);
void *msvc__calloc(size_t count, size_t size);
void *msvc__realloc(void *ptr, size_t size);
void msvc__free(void *ptr);
char *msvc__strdup(const char *s);
char *msvc__strndup(const char *s, size_t n);

/* ---- small utilities ---------------------------------------------------- */
#define msvc__container_of(ptr, type, member) \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define MSVC__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define MSVC__LIKELY(x) __builtin_expect(!!(x), 1)
#define MSVC__UNLIKELY(x) __builtin_expect(!!(x), 0)
/* A rare path kept out of its caller, so that the common one saves no
 * registers for it. */
#define MSVC__NOINLINE __attribute__((noinline))
#else
#define MSVC__LIKELY(x) (x)
#define MSVC__UNLIKELY(x) (x)
#define MSVC__NOINLINE
#endif

/* Tells the core that this thread is spinning on a value another one will
 * change: it stops speculating ahead on the load (x86's `pause`, Arm's
 * `yield`), which saves the pipeline flush when the value does change and
 * leaves the sibling hyperthread the core's resources meanwhile. */
static inline void msvc__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield");
#endif
}

/* Internal invariants only: never for anything a caller or a peer controls.
 * Compiled out with NDEBUG. */
#ifdef NDEBUG
#define MSVC__ASSERT(expr) ((void)0)
#else
void msvc__assert_fail(const char *expr, const char *file, int line);
#define MSVC__ASSERT(expr) \
  ((expr) ? (void)0 : msvc__assert_fail(#expr, __FILE__, __LINE__))
#endif

/* Case-insensitive ASCII comparison (HTTP header names, config values). */
int msvc__strcasecmp(const char *a, const char *b);
int msvc__strncasecmp(const char *a, const char *b, size_t n);

/* ---- intrusive doubly linked queue --------------------------------------
 * A circular list with a sentinel head, as in libuv: an element embeds a
 * msvc__queue_t and is recovered with msvc__container_of. */
typedef struct msvc__queue_s {
  struct msvc__queue_s *next;
  struct msvc__queue_s *prev;
} msvc__queue_t;

static inline void msvc__queue_init(msvc__queue_t *q) {
  q->next = q;
  q->prev = q;
}
static inline bool msvc__queue_empty(const msvc__queue_t *q) {
  return q->next == q;
}
static inline void msvc__queue_insert_tail(msvc__queue_t *h, msvc__queue_t *q) {
  q->next = h;
  q->prev = h->prev;
  h->prev->next = q;
  h->prev = q;
}
static inline void msvc__queue_insert_head(msvc__queue_t *h, msvc__queue_t *q) {
  q->next = h->next;
  q->prev = h;
  h->next->prev = q;
  h->next = q;
}
static inline void msvc__queue_remove(msvc__queue_t *q) {
  q->prev->next = q->next;
  q->next->prev = q->prev;
  q->next = q;
  q->prev = q;
}
#define msvc__queue_foreach(q, h) for ((q) = (h)->next; (q) != (h); (q) = (q)->next)

/* ---- growable byte buffer ----------------------------------------------
 * Used to build responses, expositions and log lines. On allocation failure
 * the buffer remembers it (err) and later appends are no-ops, so a builder
 * can append freely and check once at the end. */
typedef struct msvc__buf_s {
  char *data;
  size_t len;
  size_t cap;
  int err; /* MSVC_OK or MSVC_ENOMEM / MSVC_ETOOLARGE */
  size_t max; /* 0 = unlimited */
} msvc__buf_t;

/* A token character of RFC 9110 (5.6.2), one bit per ASCII code: digits,
 * letters and !#$%&'*+-.^_`|~. Header names are checked a byte at a time
 * with it. */
static inline bool msvc__is_tchar(unsigned char c) {
  return c < 64 ? (UINT64_C(0x03ff6cfa00000000) >> c) & 1
                : c < 128 && (UINT64_C(0x57ffffffc7fffffe) >> (c - 64)) & 1;
}

void msvc__buf_init(msvc__buf_t *b, size_t max);
void msvc__buf_free(msvc__buf_t *b);
int msvc__buf_reserve(msvc__buf_t *b, size_t extra);
void msvc__buf_append_slow(msvc__buf_t *b, const void *data, size_t len);
/* Appends len bytes; the common case (room left, no error) inline, since
 * the parser and the response writer append a few bytes many times per
 * request. */
static inline void msvc__buf_append(msvc__buf_t *b, const void *data, size_t len) {
  if (MSVC__LIKELY(len > 0 && len < b->cap - b->len && b->err == MSVC_OK &&
                   (b->max == 0 || len <= b->max - b->len))) {
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return;
  }
  msvc__buf_append_slow(b, data, len);
}
void msvc__buf_puts(msvc__buf_t *b, const char *s);
void msvc__buf_putc(msvc__buf_t *b, char c);
void msvc__buf_printf(msvc__buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void msvc__buf_vprintf(msvc__buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Appends s as the inside of a JSON string (no quotes), escaping '"', '\\'
 * and control characters; bytes >= 0x80 are copied as they are. */
void msvc__buf_json_escape(msvc__buf_t *b, const char *s, size_t len);
/* Detaches the NUL-terminated contents (caller frees with msvc__free), or
 * NULL when the buffer failed. The buffer is left empty. */
char *msvc__buf_detach(msvc__buf_t *b, size_t *len);

/* ---- JSON grammar check (json_scan.c) ------------------------------------
 * Whether text is exactly one JSON value, allocating nothing. After a cJSON
 * parse returned NULL, msvc__json_parse_error() says why: MSVC_ENOMEM when
 * the text was valid (cJSON ran out of memory), else MSVC_EJSON. */
bool msvc__json_valid(const char *text, size_t len);
int msvc__json_parse_error(const char *text, size_t len);

/* ---- JSON string escaping into a fixed buffer ----------------------------
 * Writes the escaped form of s (without quotes) into out, never more than
 * cap bytes including the NUL; returns the number of bytes written (without
 * NUL). Output is cut at a character boundary when it does not fit. */
size_t msvc__json_escape(char *out, size_t cap, const char *s, size_t len);

/* ---- time ----------------------------------------------------------------
 * RFC 3339 UTC with milliseconds, "2026-11-26T10:00:00.123Z" (24 chars + NUL).
 */
#define MSVC__RFC3339_LEN 25
void msvc__format_rfc3339_ms(uint64_t wall_ms, char out[MSVC__RFC3339_LEN]);

/* ---- randomness (non-cryptographic) --------------------------------------
 * A fast per-thread xorshift generator seeded from the OS, for jitter and
 * random picks. Never for secrets. */
uint64_t msvc__rand64(void);
/* Uniform in [0, n) for n > 0, without modulo bias. */
uint64_t msvc__rand_below(uint64_t n);
/* ndigits random lower-case hex digits and a NUL into out (ndigits + 1
 * bytes), 16 digits per draw of msvc__rand64(). */
void msvc__hex_random(char *out, size_t ndigits);
/* Whether s[0..n) is all lower-case hex digits (W3C ids), checked eight
 * bytes at a time. */
bool msvc__hex_lower_ok(const char *s, size_t n);

/* msvc_metrics_histogram_observe_exemplar() for ids already known valid
 * (a span's: 32 and 16 lower-case hex digits, NUL-terminated, span_id
 * not NULL), without checking them again. */
struct msvc_metrics_histogram_s;
void msvc__metrics_histogram_observe_exemplar_ok(struct msvc_metrics_histogram_s *h, double v,
                                                 const char *trace_id, const char *span_id,
                                                 uint64_t wall_ms);
/* The value of a hex digit of either case, or -1 for any other byte. */
static inline int msvc__hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* ---- options structs ------------------------------------------------------
 * Public options structs start with `size_t size`, filled by their _init().
 * Copy what the caller's layout holds (it may come from an older, smaller
 * header) over the defaults already in dst, then stamp dst with its own size.
 * Returns false when the caller never filled the size in. */
static inline bool msvc__opts_copy(void *dst, size_t dst_size, const void *src) {
  size_t n;

  memcpy(&n, src, sizeof(n));
  if (n < sizeof(size_t))
    return false;
  memcpy(dst, src, n < dst_size ? n : dst_size);
  memcpy(dst, &dst_size, sizeof(dst_size));
  return true;
}

/* ---- JWT, for the middleware -----------------------------------------------
 * msvc_jwt_verify(), except that when all that is left is a public-key
 * signature check (RS*, PS*, ES*: a millisecond or more of CPU) it stops and
 * returns MSVC_EAGAIN, so the caller can run msvc_jwt_verify() on another
 * thread. Cached verdicts, HMAC tokens and refusals the header decides are
 * answered at once, as msvc_jwt_verify() answers them. */
struct msvc_jwt_verifier_s;
struct msvc_jwt_claims_s;
int msvc__jwt_verify_inline(struct msvc_jwt_verifier_s *v, const char *token, size_t len,
                            struct msvc_jwt_claims_s **claims);

#endif /* MSVC_INTERNAL_H */
