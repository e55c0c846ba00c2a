#include <stdlib.h>
#include <string.h>

#include "msvc-internal.h"

void *msvc__malloc(size_t size) {
  return malloc(size == 0 ? 1 : size);
}

void *msvc__calloc(size_t count, size_t size) {
  if (count == 0 || size == 0)
    return calloc(1, 1);
  return calloc(count, size);
}

void *msvc__realloc(void *ptr, size_t size) {
  return realloc(ptr, size == 0 ? 1 : size);
}

void msvc__free(void *ptr) {
  free(ptr);
}

void msvc_free(void *ptr) {
  msvc__free(ptr);
}

char *msvc__strndup(const char *s, size_t n) {
  char *copy = msvc__malloc(n + 1);

  if (copy == NULL)
    return NULL;
  memcpy(copy, s, n);
  copy[n] = '\0';
  return copy;
}

char *msvc__strdup(const char *s) {
  return msvc__strndup(s, strlen(s));
}
