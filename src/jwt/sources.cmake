list(APPEND LIBMSVC_SOURCES
  src/jwt/cache.c
  src/jwt/claims.c
  src/jwt/crypto.c
  src/jwt/header.c
  src/jwt/jwk.c
  src/jwt/key.c
  src/jwt/negcache.c
  src/jwt/keyset.c
  src/jwt/util.c
  src/jwt/verify.c)
