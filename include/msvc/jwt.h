/**
 * @file msvc/jwt.h
 * @brief JSON Web Tokens: verification (and signing) of compact JWS tokens.
 *
 * Algorithms HS256/384/512, RS256/384/512, PS256/384/512 and ES256/384/512.
 * `none` is never accepted by any function here.
 *
 * The pieces:
 * - a **key** (#msvc_jwt_key_t) is bound to the algorithm(s) its type,
 *   size, curve and JWK `alg` allow; a token's `alg` header only selects
 *   among those, so an RSA or EC key can never be used as an HMAC secret;
 * - a **key set** (#msvc_jwt_keyset_t) is an immutable snapshot of keys that
 *   can be replaced atomically while other threads verify (key rotation);
 * - a **verifier** (#msvc_jwt_verifier_t) holds the checks (algorithms,
 *   issuer, audience, required claims, leeway, maximum age, `typ`, maximum
 *   length) and an optional cache of verified tokens;
 * - verified **claims** (#msvc_jwt_claims_t) are read with typed getters.
 *
 * Every verification failure has its own code in the MSVC_EJWT_* range;
 * msvc_jwt_result_name() names the `result` label of
 * `msvc_jwt_verifications_total` for a code (the labels are listed once,
 * in #MSVC_JWT_RESULT_MAP), and msvc_jwt_errmsg() gives
 * the detail of the last failure on the calling thread.
 *
 * Thread safety: keys, key sets, verifiers and claims may be shared by any
 * number of threads once created; msvc_jwt_keyset_replace() may run at the
 * same time as verifications.
 */
#ifndef MSVC_JWT_H
#define MSVC_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msvc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A JWS algorithm, as a bit so that sets of them fit in a mask. */
typedef enum msvc_jwt_alg_e {
  MSVC_JWT_ALG_UNSET = 0,  /**< No algorithm (never valid for a token). */
  MSVC_JWT_HS256 = 1 << 0, /**< HMAC with SHA-256. */
  MSVC_JWT_HS384 = 1 << 1, /**< HMAC with SHA-384. */
  MSVC_JWT_HS512 = 1 << 2, /**< HMAC with SHA-512. */
  MSVC_JWT_RS256 = 1 << 3, /**< RSASSA-PKCS1-v1_5 with SHA-256. */
  MSVC_JWT_RS384 = 1 << 4, /**< RSASSA-PKCS1-v1_5 with SHA-384. */
  MSVC_JWT_RS512 = 1 << 5, /**< RSASSA-PKCS1-v1_5 with SHA-512. */
  MSVC_JWT_PS256 = 1 << 6, /**< RSASSA-PSS with SHA-256, MGF1 SHA-256. */
  MSVC_JWT_PS384 = 1 << 7, /**< RSASSA-PSS with SHA-384, MGF1 SHA-384. */
  MSVC_JWT_PS512 = 1 << 8, /**< RSASSA-PSS with SHA-512, MGF1 SHA-512. */
  MSVC_JWT_ES256 = 1 << 9, /**< ECDSA on P-256 with SHA-256. */
  MSVC_JWT_ES384 = 1 << 10, /**< ECDSA on P-384 with SHA-384. */
  MSVC_JWT_ES512 = 1 << 11  /**< ECDSA on P-521 with SHA-512. */
} msvc_jwt_alg_t;

/** @brief Mask of every HMAC algorithm. */
#define MSVC_JWT_ALGS_HS (MSVC_JWT_HS256 | MSVC_JWT_HS384 | MSVC_JWT_HS512)
/** @brief Mask of every RSA algorithm (PKCS#1 v1.5 and PSS). */
#define MSVC_JWT_ALGS_RSA                                                     \
  (MSVC_JWT_RS256 | MSVC_JWT_RS384 | MSVC_JWT_RS512 | MSVC_JWT_PS256 |        \
   MSVC_JWT_PS384 | MSVC_JWT_PS512)
/** @brief Mask of every ECDSA algorithm. */
#define MSVC_JWT_ALGS_EC (MSVC_JWT_ES256 | MSVC_JWT_ES384 | MSVC_JWT_ES512)
/** @brief Mask of every supported algorithm. */
#define MSVC_JWT_ALGS_ALL (MSVC_JWT_ALGS_HS | MSVC_JWT_ALGS_RSA | MSVC_JWT_ALGS_EC)

/**
 * @brief The JWS name of an algorithm ("ES256", ...).
 * @param alg  One algorithm (a single bit).
 * @return A static string, or NULL when @p alg is not exactly one algorithm.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_jwt_alg_name(msvc_jwt_alg_t alg);

/**
 * @brief Parse a comma-separated list of algorithm names into a mask.
 * @param list  E.g. "RS256,ES256" (case-sensitive, as in JWS). "none" is
 *              refused.
 * @param mask  Receives the mask on success.
 * @return #MSVC_OK, or MSVC_EINVAL for an empty list or an unknown name.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_algs_parse(const char *list, unsigned *mask);

/**
 * @brief The one list of `result` labels of `msvc_jwt_verifications_total`.
 *
 * `XX(NAME, "label", "meaning")` for each outcome, in the order of
 * #msvc_jwt_result_t. The JWT middleware counts with these labels (every
 * series exists from the start, at 0), msvc_jwt_result_name() maps a
 * verification code onto them, and the documentation lists the same
 * values. A new outcome is added here and nowhere else.
 */
#define MSVC_JWT_RESULT_MAP(XX)                                               \
  XX(OK, "ok",                                                                \
     "the token was accepted")                                                \
  XX(MISSING, "missing",                                                      \
     "no Bearer token on a protected route")                                  \
  XX(MALFORMED, "malformed",                                                  \
     "not a well-formed token, a claim of the wrong type, a "                 \
     "missing required claim, a wrong typ")                                   \
  XX(EXPIRED, "expired",                                                      \
     "past exp plus leeway, or older than the maximum age")                   \
  XX(NOT_YET_VALID, "not_yet_valid",                                          \
     "before nbf, or iat in the future, beyond leeway")                       \
  XX(MISSING_EXP, "missing_exp",                                              \
     "no exp claim while one is required")                                    \
  XX(BAD_SIGNATURE, "bad_signature",                                          \
     "the signature does not verify with the key")                            \
  XX(BAD_ISSUER, "bad_issuer",                                                \
     "iss is not the accepted issuer")                                        \
  XX(BAD_AUDIENCE, "bad_audience",                                            \
     "aud holds none of the accepted audiences")                              \
  XX(UNKNOWN_KID, "unknown_kid",                                              \
     "no key of the key set has the token's kid")                             \
  XX(ALG_NOT_ALLOWED, "alg_not_allowed",                                      \
     "the alg is not allowed, or not with that key")

/** @brief An outcome of a verification, as counted by the `result` label. */
typedef enum msvc_jwt_result_e {
/** @cond */
#define MSVC_JWT_RESULT_ENUM_(name, label, meaning) MSVC_JWT_RESULT_##name,
  MSVC_JWT_RESULT_MAP(MSVC_JWT_RESULT_ENUM_)
#undef MSVC_JWT_RESULT_ENUM_
/** @endcond */
  MSVC_JWT_RESULT_COUNT /**< Number of outcomes (not an outcome); the others
                             are `MSVC_JWT_RESULT_` + the NAME of each entry
                             of #MSVC_JWT_RESULT_MAP, in its order. */
} msvc_jwt_result_t;

/**
 * @brief The outcome a verification code counts as.
 *
 * #MSVC_OK is `MSVC_JWT_RESULT_OK` and each MSVC_EJWT_* code has its own
 * outcome, except those the label set folds in: MSVC_EJWT_MISSING_CLAIM and
 * MSVC_EJWT_BAD_TYPE count as `malformed`, MSVC_EJWT_TOO_OLD as `expired`,
 * MSVC_EJWT_BAD_KEY as `bad_signature`.
 *
 * @param code  A result of msvc_jwt_verify().
 * @return The outcome, or #MSVC_JWT_RESULT_COUNT for a code that is not a
 *         verdict on the token (for example MSVC_ENOMEM), which should not
 *         be counted.
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API msvc_jwt_result_t msvc_jwt_result_of(int code);

/**
 * @brief The `result` label of an outcome.
 * @param r  An outcome.
 * @return A static label ("ok", "bad_signature", ...), or NULL when @p r is
 *         not an outcome.
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API const char *msvc_jwt_result_label(msvc_jwt_result_t r);

/**
 * @brief The `result` label of `msvc_jwt_verifications_total` for a code:
 *        msvc_jwt_result_label(msvc_jwt_result_of(code)).
 * @param code  A result of msvc_jwt_verify().
 * @return A static label, or NULL for a code that is not a verification
 *         outcome (for example MSVC_ENOMEM), which should not be counted.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_jwt_result_name(int code);

/**
 * @brief Detail of the last JWT failure on the calling thread.
 *
 * Meant for logs and for `error_description`; it never contains key
 * material, and at most a short prefix of a claim value.
 *
 * @return A thread-local string ("" when no failure was recorded), valid
 *         until the next JWT call on the same thread.
 * @note Thread-safe (per thread).
 * @since 0.1
 */
MSVC_API const char *msvc_jwt_errmsg(void);

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

/** @brief A verification or signing key bound to its algorithm(s). */
typedef struct msvc_jwt_key_s msvc_jwt_key_t;

/**
 * @brief Load a key from PEM: a public key, an RSA or EC private key, or a
 *        PKCS#8 private key.
 *
 * RSA keys must have a modulus of 2048 to 8192 bits (RFC 7518 §3.3) and may
 * be used with RS* and PS*; EC keys are P-256, P-384 or P-521 and are bound
 * to ES256, ES384 or ES512 by their curve. Private keys can also verify.
 *
 * @param pem   The PEM text (need not be NUL-terminated).
 * @param len   Its length in bytes.
 * @param algs  0 for every algorithm the key type allows, or a mask that
 *              narrows them (it must leave at least one).
 * @param kid   Key id (copied), or NULL for none.
 * @param out   Receives the key; release it with msvc_jwt_key_free().
 * @return #MSVC_OK; MSVC_EJWT_BAD_KEY for unparsable PEM, an unsupported key
 *         type, curve or size, or a mask that leaves no algorithm;
 *         MSVC_EINVAL for NULL arguments; MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_key_from_pem(const char *pem, size_t len, unsigned algs,
                                   const char *kid, msvc_jwt_key_t **out);

/**
 * @brief Load a PEM key from a file (see msvc_jwt_key_from_pem()).
 * @param path  File to read (at most 64 KiB).
 * @param algs  As for msvc_jwt_key_from_pem().
 * @param kid   Key id (copied), or NULL.
 * @param out   Receives the key; release it with msvc_jwt_key_free().
 * @return As msvc_jwt_key_from_pem(), plus negated errno values from
 *         opening or reading the file and MSVC_ETOOLARGE.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_key_from_pem_file(const char *path, unsigned algs,
                                        const char *kid, msvc_jwt_key_t **out);

/**
 * @brief Use raw bytes as an HMAC secret.
 *
 * A secret shorter than a hash's output cannot be used with that hash
 * (RFC 7518 §3.2): a 32-byte secret allows HS256 only, 48 bytes HS256 and
 * HS384, 64 bytes and more all three.
 *
 * @param secret  The secret (copied; wiped from memory when the key goes).
 * @param len     Its length in bytes (at least 32).
 * @param algs    0 for every HS algorithm the length allows, or a mask of
 *                HS algorithms that narrows them.
 * @param kid     Key id (copied), or NULL.
 * @param out     Receives the key; release it with msvc_jwt_key_free().
 * @return #MSVC_OK; MSVC_EJWT_BAD_KEY when the secret is too short for every
 *         requested algorithm or @p algs names a non-HMAC algorithm;
 *         MSVC_EINVAL; MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_key_from_secret(const void *secret, size_t len,
                                      unsigned algs, const char *kid,
                                      msvc_jwt_key_t **out);

/**
 * @brief Load one key from a JWK (RFC 7517): `kty` RSA (`n`, `e`), EC
 *        (`crv`, `x`, `y`) or oct (`k`), with `d` for a private key.
 *
 * The JWK's `alg`, when present, narrows the key to that one algorithm (and
 * must agree with the key type and curve); its `kid` becomes the key id. A
 * JWK whose `use` is present and not `sig`, or whose `key_ops` lacks
 * `verify` and `sign`, is refused.
 *
 * @param json  The JWK as a JSON object (need not be NUL-terminated).
 * @param len   Its length in bytes.
 * @param out   Receives the key; release it with msvc_jwt_key_free().
 * @return #MSVC_OK; MSVC_EJWT_BAD_KEY for a JWK that is malformed, of an
 *         unsupported type or curve, too small, or inconsistent with its
 *         `alg`; MSVC_EINVAL; MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_key_from_jwk(const char *json, size_t len,
                                   msvc_jwt_key_t **out);

/**
 * @brief Release a key. Keys are reference-counted: a key set or a verified
 *        claims object that holds the key keeps it alive.
 * @param key  The key, or NULL (a no-op).
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_jwt_key_free(msvc_jwt_key_t *key);

/**
 * @brief The key's id.
 * @param key  The key.
 * @return The `kid`, borrowed until the key is freed, or NULL when it has
 *         none.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_jwt_key_kid(const msvc_jwt_key_t *key);

/**
 * @brief The algorithms the key may be used with.
 * @param key  The key.
 * @return A mask of #msvc_jwt_alg_t bits (never 0).
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API unsigned msvc_jwt_key_algs(const msvc_jwt_key_t *key);

/**
 * @brief Whether the key can sign (a private key or an HMAC secret).
 * @param key  The key.
 * @return true when msvc_jwt_sign() can use it.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API bool msvc_jwt_key_can_sign(const msvc_jwt_key_t *key);

/**
 * @brief The public part of an RSA or EC key as a JWK, for publishing in a
 *        JWK Set (`/.well-known/jwks.json`).
 *
 * Contains `kty`, the public parameters, `use":"sig"`, `kid` when the key
 * has one, and `alg` when the key is bound to exactly one algorithm. Never
 * contains private material.
 *
 * @param key  The key.
 * @param out  Receives a NUL-terminated JSON object; the caller releases it
 *             with msvc_free().
 * @return #MSVC_OK; MSVC_EINVAL for an HMAC key (a secret is never
 *         published) or NULL arguments; MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_key_public_jwk(const msvc_jwt_key_t *key, char **out);

/**
 * @brief The RFC 7638 JWK thumbprint (SHA-256, base64url) of a key, a
 *        stable `kid` for it.
 * @param key  The key (RSA, EC or HMAC).
 * @param out  Receives the 43-character thumbprint and a NUL.
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_key_thumbprint(const msvc_jwt_key_t *key, char out[44]);

/* ------------------------------------------------------------------------ */
/* Key sets                                                                 */
/* ------------------------------------------------------------------------ */

/** @brief A replaceable set of keys; readers always see one whole snapshot. */
typedef struct msvc_jwt_keyset_s msvc_jwt_keyset_t;

/**
 * @brief Called when a token names a `kid` that the key set does not hold,
 *        so that a key fetcher can refresh the set (rate-limiting is the
 *        fetcher's business).
 * @param data  The pointer given to msvc_jwt_keyset_on_unknown_kid().
 * @param kid   The unknown key id, valid only during the call.
 * @note Called on the verifying thread, possibly from several threads at
 *       once; it must not block and must not free the key set.
 */
typedef void (*msvc_jwt_unknown_kid_fn)(void *data, const char *kid);

/**
 * @brief Create an empty key set.
 * @param out  Receives the set; release it with msvc_jwt_keyset_free().
 * @return #MSVC_OK, MSVC_EINVAL or MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_keyset_new(msvc_jwt_keyset_t **out);

/**
 * @brief Release a key set and its references to its keys.
 * @param ks  The set, or NULL (a no-op). No verifier may use it any more.
 * @note Not safe against concurrent use of the same set.
 * @since 0.1
 */
MSVC_API void msvc_jwt_keyset_free(msvc_jwt_keyset_t *ks);

/**
 * @brief Add one key (a new snapshot holding the old keys and this one).
 * @param ks   The set.
 * @param key  The key; the set takes its own reference, the caller keeps
 *             (and still frees) its own.
 * @return #MSVC_OK; MSVC_ELIMIT beyond 256 keys; MSVC_EINVAL; MSVC_ENOMEM.
 * @note Thread-safe, also against concurrent verifications.
 * @since 0.1
 */
MSVC_API int msvc_jwt_keyset_add(msvc_jwt_keyset_t *ks, msvc_jwt_key_t *key);

/**
 * @brief Replace every key at once (key rotation).
 *
 * Verifications already running finish with the snapshot they started with;
 * later ones see only the new keys. Cached verifications made with a key
 * that is not in the new set are dropped on their next lookup.
 *
 * @param ks    The set.
 * @param keys  The new keys (the set takes its own references); may be
 *              NULL when @p n is 0.
 * @param n     How many (at most 256).
 * @return #MSVC_OK; MSVC_ELIMIT; MSVC_EINVAL; MSVC_ENOMEM (the old keys stay).
 * @note Thread-safe, also against concurrent verifications.
 * @since 0.1
 */
MSVC_API int msvc_jwt_keyset_replace(msvc_jwt_keyset_t *ks,
                                     msvc_jwt_key_t *const *keys, size_t n);

/**
 * @brief Replace the keys with those of a JWK Set document (RFC 7517 §5).
 *
 * Entries of an unknown `kty`, curve or `alg`, or meant for encryption
 * (`use` other than `sig`), are skipped as RFC 7517 asks; an entry of a
 * supported type that is malformed fails the whole document, and so does a
 * document with no usable key. On failure the old keys stay.
 *
 * @param ks    The set.
 * @param json  The document `{"keys":[...]}` (need not be NUL-terminated).
 * @param len   Its length (at most 1 MiB).
 * @return #MSVC_OK; MSVC_EJWT_BAD_KEY; MSVC_ETOOLARGE; MSVC_EINVAL;
 *         MSVC_ENOMEM. msvc_jwt_errmsg() tells which entry failed.
 * @note Thread-safe, also against concurrent verifications.
 * @since 0.1
 */
MSVC_API int msvc_jwt_keyset_load_jwks(msvc_jwt_keyset_t *ks, const char *json,
                                       size_t len);

/**
 * @brief Replace the keys with those of a JWK Set file (see
 *        msvc_jwt_keyset_load_jwks()).
 * @param ks    The set.
 * @param path  The file (at most 1 MiB).
 * @return As msvc_jwt_keyset_load_jwks(), plus negated errno values from
 *         opening or reading the file.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_keyset_load_jwks_file(msvc_jwt_keyset_t *ks,
                                            const char *path);

/**
 * @brief Number of keys in the current snapshot.
 * @param ks  The set.
 * @return The count. Thread-safe.
 * @since 0.1
 */
MSVC_API size_t msvc_jwt_keyset_count(const msvc_jwt_keyset_t *ks);

/**
 * @brief A number that grows every time the keys change.
 * @param ks  The set.
 * @return The generation (1 for a new, empty set). Thread-safe.
 * @since 0.1
 */
MSVC_API uint64_t msvc_jwt_keyset_generation(const msvc_jwt_keyset_t *ks);

/**
 * @brief Register the hook told about unknown key ids.
 * @param ks    The set.
 * @param cb    The hook, or NULL to remove it.
 * @param data  Passed to the hook.
 * @note Set it before verifications start; not synchronised with them.
 * @since 0.1
 */
MSVC_API void msvc_jwt_keyset_on_unknown_kid(msvc_jwt_keyset_t *ks,
                                             msvc_jwt_unknown_kid_fn cb,
                                             void *data);

/* ------------------------------------------------------------------------ */
/* Verification                                                             */
/* ------------------------------------------------------------------------ */

/** @brief Verified claims of one token. */
typedef struct msvc_jwt_claims_s msvc_jwt_claims_t;

/** @brief A verifier: the checks a token must pass, and its key set. */
typedef struct msvc_jwt_verifier_s msvc_jwt_verifier_t;

/**
 * @brief What a verifier checks. Fill with msvc_jwt_verify_opts_init(),
 *        then change what you need. Strings and arrays are copied by
 *        msvc_jwt_verifier_new().
 */
typedef struct msvc_jwt_verify_opts_s {
  /** Set by msvc_jwt_verify_opts_init(); lets later versions grow the
   *  struct without breaking callers. Do not change it. */
  size_t size;
  /** Allowed algorithms (mask). Default: all; a key's own binding still
   *  applies. */
  unsigned algs;
  /** Required exact `iss`, or NULL (default) for no check. */
  const char *issuer;
  /** Accepted audiences: the token's `aud` (a string or an array) must
   *  contain one of them. NULL (default) for no check. */
  const char *const *audiences;
  /** Number of entries in @ref audiences. */
  size_t n_audiences;
  /** Claims that must be present (e.g. "sub", "exp"). Default none. */
  const char *const *required;
  /** Number of entries in @ref required. */
  size_t n_required;
  /** Clock skew allowed on `exp`, `nbf` and a future `iat`, in seconds.
   *  Default 30. */
  uint32_t leeway_s;
  /** Maximum age since `iat` in seconds (then `iat` is required), or 0
   *  (default) for no limit. */
  uint32_t max_age_s;
  /** Expected `typ` header (compared case-insensitively, with or without
   *  an "application/" prefix, RFC 8725 §3.11), or NULL (default): then a
   *  `typ` header, if present, must still be a string. */
  const char *typ;
  /** Longest token accepted, checked before anything is decoded. Default
   *  8192 bytes. */
  size_t max_token_len;
  /** Most keys tried for a token without `kid`. Default 4. */
  uint32_t max_kidless_tries;
  /** Entries of the verified-token cache, or 0 (default) for none. */
  uint32_t cache_size;
  /** Wall clock in milliseconds since the Unix epoch; NULL (default) uses
   *  msvc_wall_ms(). */
  msvc_clock_fn clock;
  /** Passed to @ref clock. */
  void *clock_data;
  /** Refuse a token without an `exp` claim with MSVC_EJWT_MISSING_EXP
   *  (`result` label `missing_exp`). Default false here for compatibility;
   *  the JWT middleware and the service object turn it on.
   *  @since 0.2 */
  bool require_exp;
  /** Entries of the refused-token cache, or 0 (default) for none. A token
   *  refused for a reason that cannot change while the key set stays the
   *  same (malformed, bad signature, algorithm, issuer, audience, type,
   *  missing claim) is remembered, so that the same token sent again is
   *  refused without a signature check. Refusals that time or a key
   *  refresh can change (`expired`, `not_yet_valid`, `unknown_kid`) are
   *  never remembered, and every entry is forgotten when the key set
   *  changes. Bounded in entries and in bytes (1 KiB per entry on
   *  average), least recently used first out.
   *  @since 0.2 */
  uint32_t neg_cache_size;
} msvc_jwt_verify_opts_t;

/**
 * @brief Fill verifier options with their defaults.
 * @param opts  The options to fill.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_jwt_verify_opts_init(msvc_jwt_verify_opts_t *opts);

/**
 * @brief Create a verifier.
 * @param opts  Options (copied), or NULL for the defaults.
 * @param ks    The keys; borrowed: the set must outlive the verifier. Its
 *              keys may be replaced at any time.
 * @param out   Receives the verifier; release it with
 *              msvc_jwt_verifier_free().
 * @return #MSVC_OK; MSVC_EINVAL for a NULL key set, options not filled by
 *         msvc_jwt_verify_opts_init() (a wrong `size`), an empty or unknown
 *         algorithm mask, max_token_len 0, or a NULL string in an array;
 *         MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_verifier_new(const msvc_jwt_verify_opts_t *opts,
                                   msvc_jwt_keyset_t *ks,
                                   msvc_jwt_verifier_t **out);

/**
 * @brief Release a verifier and its cache.
 * @param v  The verifier, or NULL (a no-op). Claims it returned stay valid.
 * @since 0.1
 */
MSVC_API void msvc_jwt_verifier_free(msvc_jwt_verifier_t *v);

/**
 * @brief Verify a compact JWS token and check its claims.
 *
 * Order: length, structure and strict base64url, header (a JSON object
 * without duplicate names, supported `alg`, no unknown `crit`, `typ`), key
 * selection, signature, then claims (`exp`, `nbf`, `iat`, maximum age,
 * `iss`, `aud`, required claims). Keys named by the token (`jku`, `x5u`,
 * `jwk`, `x5c`) are ignored, never fetched.
 *
 * Key selection: a token with a `kid` is checked with the keys of that id
 * that allow its `alg`; when no key has that id, keys configured without
 * an id are tried, and when there are none the result is
 * MSVC_EJWT_UNKNOWN_KID (and the key set's unknown-kid hook is called). A
 * token without a `kid` is checked with at most max_kidless_tries keys
 * that allow its `alg`. A header `kid` longer than 511 bytes, a header
 * with more than 32 members or a member name over 63 bytes is malformed.
 *
 * With a cache, a token seen before is not verified again while its key is
 * still in the set; `exp` and `nbf` are still checked on every hit. With a
 * refused-token cache, a token refused before for a lasting reason is
 * refused again at the cost of a lookup, with the same code and detail,
 * until the key set changes.
 *
 * @param v       The verifier.
 * @param token   The token (need not be NUL-terminated).
 * @param len     Its length.
 * @param claims  Receives the verified claims on success (release them
 *                with msvc_jwt_claims_free()), or NULL when not wanted.
 * @return #MSVC_OK, or MSVC_EJWT_MALFORMED, MSVC_EJWT_ALG_NOT_ALLOWED,
 *         MSVC_EJWT_UNKNOWN_KID, MSVC_EJWT_BAD_SIGNATURE,
 *         MSVC_EJWT_EXPIRED, MSVC_EJWT_NOT_YET_VALID, MSVC_EJWT_TOO_OLD,
 *         MSVC_EJWT_BAD_ISSUER, MSVC_EJWT_BAD_AUDIENCE,
 *         MSVC_EJWT_MISSING_CLAIM, MSVC_EJWT_BAD_TYPE,
 *         MSVC_EJWT_MISSING_EXP (with require_exp); MSVC_EINVAL;
 *         MSVC_ENOMEM. msvc_jwt_errmsg() has the detail.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_verify(msvc_jwt_verifier_t *v, const char *token,
                             size_t len, msvc_jwt_claims_t **claims);

/** @brief Counters of a verifier's cache. */
typedef struct msvc_jwt_cache_stats_s {
  uint64_t hits;      /**< Lookups answered from the cache. */
  uint64_t misses;    /**< Lookups that had to verify. */
  uint64_t evictions; /**< Entries dropped to make room (LRU). */
  uint64_t dropped;   /**< Entries dropped because their key left the set. */
  size_t entries;     /**< Entries held now. */
} msvc_jwt_cache_stats_t;

/**
 * @brief Read the cache counters.
 * @param v      The verifier.
 * @param stats  Receives the counters (all zero without a cache).
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_jwt_verifier_cache_stats(msvc_jwt_verifier_t *v,
                                            msvc_jwt_cache_stats_t *stats);

/**
 * @brief Read the counters of the refused-token cache (see
 *        msvc_jwt_verify_opts_t::neg_cache_size).
 *
 * `hits` are refusals answered without a signature check; `dropped`
 * counts entries forgotten because the key set changed.
 * @param v      The verifier.
 * @param stats  Receives the counters (all zero without that cache).
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API void msvc_jwt_verifier_neg_cache_stats(msvc_jwt_verifier_t *v,
                                                msvc_jwt_cache_stats_t *stats);

/**
 * @brief Release verified claims.
 * @param c  The claims, or NULL (a no-op).
 * @note Thread-safe (claims are reference-counted and may be shared).
 * @since 0.1
 */
MSVC_API void msvc_jwt_claims_free(msvc_jwt_claims_t *c);

/**
 * @brief A string claim.
 * @param c     The claims.
 * @param name  Claim name.
 * @return The value, borrowed until the claims are freed, or NULL when the
 *         claim is absent or not a string.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_jwt_claims_string(const msvc_jwt_claims_t *c,
                                            const char *name);

/**
 * @brief An integer claim.
 * @param c     The claims.
 * @param name  Claim name.
 * @param out   Receives the value.
 * @return #MSVC_OK; MSVC_ENOTFOUND when absent; MSVC_ERANGE when it is not
 *         a number with an integral value within ±2^53.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_claims_int(const msvc_jwt_claims_t *c, const char *name,
                                 int64_t *out);

/**
 * @brief A boolean claim.
 * @param c     The claims.
 * @param name  Claim name.
 * @param out   Receives the value.
 * @return #MSVC_OK; MSVC_ENOTFOUND when absent; MSVC_EINVAL when not a
 *         boolean.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_claims_bool(const msvc_jwt_claims_t *c, const char *name,
                                  bool *out);

/**
 * @brief Number of strings in a claim that is a string or an array of
 *        strings (e.g. `aud`, `scope` lists).
 * @param c     The claims.
 * @param name  Claim name.
 * @return 1 for a string, the array's length for an array made only of
 *         strings, 0 otherwise.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API size_t msvc_jwt_claims_string_count(const msvc_jwt_claims_t *c,
                                             const char *name);

/**
 * @brief One string of a string or string-array claim.
 * @param c     The claims.
 * @param name  Claim name.
 * @param i     Index below msvc_jwt_claims_string_count().
 * @return The string, borrowed until the claims are freed, or NULL.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_jwt_claims_string_at(const msvc_jwt_claims_t *c,
                                               const char *name, size_t i);

/**
 * @brief One claim (any JSON type) as compact JSON text.
 * @param c     The claims.
 * @param name  Claim name.
 * @param out   Receives the text; the caller releases it with msvc_free().
 * @return #MSVC_OK; MSVC_ENOTFOUND; MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_claims_raw(const msvc_jwt_claims_t *c, const char *name,
                                 char **out);

/**
 * @brief The whole payload as the token carried it (decoded JSON text).
 * @param c  The claims.
 * @return NUL-terminated JSON, borrowed until the claims are freed.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_jwt_claims_json(const msvc_jwt_claims_t *c);

/**
 * @brief The algorithm the token was verified with.
 * @param c  The claims.
 * @return One #msvc_jwt_alg_t bit.
 * @since 0.1
 */
MSVC_API msvc_jwt_alg_t msvc_jwt_claims_alg(const msvc_jwt_claims_t *c);

/**
 * @brief The id of the key that verified the token.
 * @param c  The claims.
 * @return The key's `kid`, borrowed until the claims are freed, or NULL
 *         when the key has none.
 * @since 0.1
 */
MSVC_API const char *msvc_jwt_claims_kid(const msvc_jwt_claims_t *c);

/* ------------------------------------------------------------------------ */
/* Signing                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * @brief Sign claims into a compact JWS token.
 *
 * The header is `{"alg":...,"typ":"JWT"}` plus `kid` when the key has one.
 * ECDSA signatures are deterministic (RFC 6979); PSS uses a salt as long as
 * the hash.
 *
 * @param key     A private key or an HMAC secret.
 * @param alg     The algorithm; it must be one the key allows.
 *                #MSVC_JWT_ALG_UNSET picks the key's only algorithm, or for
 *                RSA RS256 and for HMAC the strongest its length allows.
 * @param claims  The payload: a JSON object (NUL-terminated), copied into
 *                the token as it is.
 * @param token   Receives the NUL-terminated token; the caller releases it
 *                with msvc_free().
 * @return #MSVC_OK; MSVC_EJWT_BAD_KEY for a public-only key;
 *         MSVC_EJWT_ALG_NOT_ALLOWED when the key does not allow @p alg;
 *         MSVC_EJSON when @p claims is not a JSON object; MSVC_EINVAL;
 *         MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_jwt_sign(const msvc_jwt_key_t *key, msvc_jwt_alg_t alg,
                           const char *claims, char **token);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_JWT_H */
