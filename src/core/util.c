#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "msvc-internal.h"

static uint64_t clock_ms(clockid_t id) {
  struct timespec ts;

  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t msvc_now_ms(void) {
  return clock_ms(CLOCK_MONOTONIC);
}

uint64_t msvc_wall_ms(void) {
  return clock_ms(CLOCK_REALTIME);
}

#ifndef NDEBUG
void msvc__assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "libmsvc: internal invariant broken: %s (%s:%d)\n", expr,
          file, line);
  abort();
}
#endif

static int ascii_lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

int msvc__strncasecmp(const char *a, const char *b, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    int ca = ascii_lower((unsigned char)a[i]);
    int cb = ascii_lower((unsigned char)b[i]);
    if (ca != cb)
      return ca - cb;
    if (ca == 0)
      break;
  }
  return 0;
}

int msvc__strcasecmp(const char *a, const char *b) {
  return msvc__strncasecmp(a, b, SIZE_MAX);
}

void msvc__format_rfc3339_ms(uint64_t wall_ms, char out[MSVC__RFC3339_LEN]) {
  time_t secs = (time_t)(wall_ms / 1000u);
  struct tm tm;
  char tmp[64];

  gmtime_r(&secs, &tm);
  /* A wider scratch buffer keeps the compiler's truncation analysis happy
   * for years outside 0000-9999, which a millisecond clock cannot reach. */
  snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, (unsigned)(wall_ms % 1000u));
  memcpy(out, tmp, MSVC__RFC3339_LEN - 1);
  out[MSVC__RFC3339_LEN - 1] = '\0';
}

/* xorshift64*: a few nanoseconds, good enough for jitter and random picks.
 * Each thread seeds its own state from the kernel on first use. */
static _Thread_local uint64_t rand_state;

/* A thread's first state, never zero. */
MSVC__NOINLINE static uint64_t rand_seed(void) {
  uint64_t x;

  if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != (ssize_t)sizeof(x))
    x = msvc_now_ms() ^ (uint64_t)(uintptr_t)&rand_state;
  return x | 1;
}

/* Inline in this file: an id's two draws take no calls. */
static inline uint64_t rand_next(void) {
  uint64_t x = rand_state;

  if (MSVC__UNLIKELY(x == 0))
    x = rand_seed();
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rand_state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

uint64_t msvc__rand64(void) { return rand_next(); }

/* Eight lower-case hex digits of v at once: each nibble spread into a byte
 * of its own, then '0' added, and 'a' - '0' - 10 more where it is 10 or
 * above. The digits come out in byte order, not in the order of v's
 * nibbles, which for random digits makes no difference. */
static void hex8(char *out, uint32_t v) {
  uint64_t x = v;

  x = (x | x << 16) & UINT64_C(0x0000ffff0000ffff);
  x = (x | x << 8) & UINT64_C(0x00ff00ff00ff00ff);
  x = (x | x << 4) & UINT64_C(0x0f0f0f0f0f0f0f0f);
  x += UINT64_C(0x3030303030303030) +
       (((x + UINT64_C(0x0606060606060606)) >> 4) & UINT64_C(0x0101010101010101)) *
           ('a' - '0' - 10);
  memcpy(out, &x, 8);
}

#ifdef __SSE2__
/* The bytes of v (its low 8 when half) as hex digits, each byte's two
 * nibbles side by side: '0' added to all, 'a' - '0' - 10 more to those
 * above 9. The digits come out in an order of their own, which for random
 * digits makes no difference. */
static inline void hex_digits(__m128i v, __m128i *d0, __m128i *d1) {
  const __m128i nib = _mm_set1_epi8(0x0f), nine = _mm_set1_epi8(9);
  const __m128i zero = _mm_set1_epi8('0'), gap = _mm_set1_epi8('a' - '0' - 10);
  __m128i lo = _mm_and_si128(v, nib), hi = _mm_and_si128(_mm_srli_epi16(v, 4), nib);
  __m128i a = _mm_unpacklo_epi8(hi, lo), b = _mm_unpackhi_epi8(hi, lo);

  *d0 = _mm_add_epi8(_mm_add_epi8(a, zero), _mm_and_si128(_mm_cmpgt_epi8(a, nine), gap));
  *d1 = _mm_add_epi8(_mm_add_epi8(b, zero), _mm_and_si128(_mm_cmpgt_epi8(b, nine), gap));
}

/* The 32 hex digits of a and b, sixteen bytes at a time. */
static inline void hex32(char *out, uint64_t a, uint64_t b) {
  __m128i d0, d1;

  hex_digits(_mm_set_epi64x((long long)b, (long long)a), &d0, &d1);
  _mm_storeu_si128((__m128i *)(void *)out, d0);
  _mm_storeu_si128((__m128i *)(void *)(out + 16), d1);
}

/* The 16 hex digits of v. */
static inline void hex16(char *out, uint64_t v) {
  __m128i d0, d1;

  hex_digits(_mm_set_epi64x(0, (long long)v), &d0, &d1);
  _mm_storeu_si128((__m128i *)(void *)out, d0);
}
#endif

/* Any number of digits, 16 per draw; kept out of line so that the ids'
 * own sizes below need no scratch buffer (nor its stack guard). */
MSVC__NOINLINE static void hex_random_any(char *out, size_t ndigits) {
  char d[16];
  size_t i = 0;

  for (; i < ndigits; i += 16) {
    uint64_t r = rand_next();

    if (ndigits - i >= 16) { /* straight into out: no copy to stall on */
      hex8(out + i, (uint32_t)r);
      hex8(out + i + 8, (uint32_t)(r >> 32));
    } else {
      hex8(d, (uint32_t)r);
      hex8(d + 8, (uint32_t)(r >> 32));
      memcpy(out + i, d, ndigits - i);
    }
  }
  out[ndigits] = '\0';
}

void msvc__hex_random(char *out, size_t ndigits) {
#ifdef __SSE2__
  /* the sizes of ids: 128 bits (request ids, trace ids) and 64 (span ids) */
  if (MSVC__LIKELY(ndigits == 32)) {
    uint64_t a = rand_next();

    hex32(out, a, rand_next());
    out[32] = '\0';
    return;
  }
  if (ndigits == 16) {
    hex16(out, rand_next());
    out[16] = '\0';
    return;
  }
#endif
  hex_random_any(out, ndigits);
}

#define ONES UINT64_C(0x0101010101010101)

/* The high bit of each byte of x that lies strictly between m and n
 * (m <= 127, n <= 128), clear for bytes of 0x80 and above. No carry crosses
 * a byte, so each byte's answer is its own. */
static inline uint64_t bytes_between(uint64_t x, unsigned m, unsigned n) {
  uint64_t low = x & ONES * 127;

  return (ONES * (127 + n) - low) & ~x & (low + ONES * (127 - m)) & ONES * 128;
}

bool msvc__hex_lower_ok(const char *s, size_t n) {
  size_t i = 0;
  uint64_t w;

  for (; i + 8 <= n; i += 8) {
    memcpy(&w, s + i, 8);
    if ((bytes_between(w, '0' - 1, '9' + 1) | bytes_between(w, 'a' - 1, 'f' + 1)) !=
        ONES * 128)
      return false;
  }
  for (; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

uint64_t msvc__rand_below(uint64_t n) {
  uint64_t limit, r;

  if (n <= 1)
    return 0;
  /* Reject the top partial range to avoid modulo bias. */
  limit = UINT64_MAX - (UINT64_MAX % n);
  do {
    r = msvc__rand64();
  } while (r >= limit);
  return r % n;
}
