#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msvc-internal.h"

void msvc__buf_init(msvc__buf_t *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->err = MSVC_OK;
  b->max = max;
}

void msvc__buf_free(msvc__buf_t *b) {
  msvc__free(b->data);
  msvc__buf_init(b, b->max);
}

int msvc__buf_reserve(msvc__buf_t *b, size_t extra) {
  size_t need, cap;
  char *data;

  if (b->err != MSVC_OK)
    return b->err;
  /* One byte more than asked for, so the contents can always be
   * NUL-terminated in place. */
  if (extra > SIZE_MAX - b->len - 1) {
    b->err = MSVC_ENOMEM;
    return b->err;
  }
  need = b->len + extra + 1;
  if (b->max != 0 && need - 1 > b->max) {
    b->err = MSVC_ETOOLARGE;
    return b->err;
  }
  if (need <= b->cap)
    return MSVC_OK;
  cap = b->cap < 64 ? 64 : b->cap;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  data = msvc__realloc(b->data, cap);
  if (data == NULL) {
    b->err = MSVC_ENOMEM;
    return b->err;
  }
  b->data = data;
  b->cap = cap;
  return MSVC_OK;
}

void msvc__buf_append_slow(msvc__buf_t *b, const void *data, size_t len) {
  if (len == 0 || msvc__buf_reserve(b, len) != MSVC_OK)
    return;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void msvc__buf_puts(msvc__buf_t *b, const char *s) {
  msvc__buf_append(b, s, strlen(s));
}

void msvc__buf_putc(msvc__buf_t *b, char c) {
  msvc__buf_append(b, &c, 1);
}

void msvc__buf_vprintf(msvc__buf_t *b, const char *fmt, va_list ap) {
  va_list ap2;
  int n;

  if (b->err != MSVC_OK)
    return;
  va_copy(ap2, ap);
  n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) {
    b->err = MSVC_EINVAL;
    return;
  }
  if (msvc__buf_reserve(b, (size_t)n) != MSVC_OK)
    return;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void msvc__buf_printf(msvc__buf_t *b, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  msvc__buf_vprintf(b, fmt, ap);
  va_end(ap);
}

/* The escape of one byte, or NULL when it stands for itself. */
static const char *json_escape_of(unsigned char c, char tmp[7]) {
  switch (c) {
  case '"':
    return "\\\"";
  case '\\':
    return "\\\\";
  case '\n':
    return "\\n";
  case '\r':
    return "\\r";
  case '\t':
    return "\\t";
  case '\b':
    return "\\b";
  case '\f':
    return "\\f";
  default:
    break;
  }
  if (c < 0x20 || c == 0x7f) {
    snprintf(tmp, 7, "\\u%04x", c);
    return tmp;
  }
  return NULL;
}

void msvc__buf_json_escape(msvc__buf_t *b, const char *s, size_t len) {
  size_t i, run = 0;
  char tmp[7];

  for (i = 0; i < len; i++) {
    const char *esc = json_escape_of((unsigned char)s[i], tmp);
    if (esc == NULL)
      continue;
    msvc__buf_append(b, s + run, i - run);
    msvc__buf_puts(b, esc);
    run = i + 1;
  }
  msvc__buf_append(b, s + run, len - run);
}

size_t msvc__json_escape(char *out, size_t cap, const char *s, size_t len) {
  size_t i, n = 0;
  char tmp[7];

  if (cap == 0)
    return 0;
  for (i = 0; i < len; i++) {
    const char *esc = json_escape_of((unsigned char)s[i], tmp);
    size_t elen = esc != NULL ? strlen(esc) : 1;
    if (n + elen >= cap)
      break;
    if (esc != NULL)
      memcpy(out + n, esc, elen);
    else
      out[n] = s[i];
    n += elen;
  }
  /* Do not leave half of a UTF-8 sequence at the end of a cut string. */
  if (i < len) {
    while (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0x80)
      n--;
    if (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0xC0)
      n--;
  }
  out[n] = '\0';
  return n;
}

char *msvc__buf_detach(msvc__buf_t *b, size_t *len) {
  char *data;

  if (b->err != MSVC_OK) {
    msvc__buf_free(b);
    return NULL;
  }
  if (b->data == NULL && msvc__buf_reserve(b, 0) != MSVC_OK)
    return NULL;
  b->data[b->len] = '\0';
  data = b->data;
  if (len != NULL)
    *len = b->len;
  msvc__buf_init(b, b->max);
  return data;
}
