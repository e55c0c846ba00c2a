/*
 * msvc-jwt: verify or sign a JSON Web Token from the command line, make a
 * signing key and publish its public half.
 *
 *   msvc-jwt verify [--jwks FILE|URL] [--key PEM] [--secret-file F] [--alg A,...]
 *                   [--iss I] [--aud A] [--leeway S] [--now UNIX] [--typ T]
 *                   [--require CLAIM] TOKEN|-
 *   msvc-jwt sign --alg A (--key PEM | --secret-file F) [--kid K] CLAIMS_JSON|-
 *   msvc-jwt keygen [--alg A] [--bits N] --out KEY.pem [--pub PUBLIC.pem]
 *   msvc-jwt jwks [--alg A] [--kid K] KEY.pem...
 *
 * verify prints the claims as JSON and exits 0, or prints the result label
 * (e.g. "expired") and the reason on stderr and exits 1. keygen prints the
 * new key's kid; jwks prints a JWK Set. Usage and key errors exit 2.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/jwt.h>

#include "keygen.h"
#ifdef MSVC_JWT_TOOL_FETCH
#include <uv.h>
#include <msvc/jwks.h>
#endif

#define MAX_TOOL_INPUT (1024 * 1024)
#define MAX_LIST 16

typedef struct cli_s {
  const char *jwks, *key, *secret_file, *kid, *iss, *typ, *out, *pub;
  unsigned bits;
  const char *aud[MAX_LIST];
  const char *required[MAX_LIST];
  size_t n_aud, n_required;
  unsigned algs;
  long leeway;
  long long now;
  int have_now;
} cli_t;

static void usage(FILE *out) {
  fputs("usage:\n"
        "  msvc-jwt verify [--jwks FILE|URL] [--key PEM] [--secret-file F] [--alg A,...]\n"
        "                  [--iss ISSUER] [--aud AUDIENCE]... [--leeway SECONDS]\n"
        "                  [--now UNIX_TIME] [--typ TYPE] [--require CLAIM]... TOKEN|-\n"
        "  msvc-jwt sign --alg A (--key PEM | --secret-file F) [--kid K] CLAIMS_JSON|-\n"
        "  msvc-jwt keygen [--alg ES256|ES384|ES512|RS256|...|PS512] [--bits 2048..8192]\n"
        "                  --out KEY.pem [--pub PUBLIC.pem]\n"
        "  msvc-jwt jwks [--alg A] [--kid K] KEY.pem...\n"
        "\n"
        "verify prints the claims and exits 0, or prints the result (expired,\n"
        "bad_signature, ...) on stderr and exits 1; other errors exit 2.\n"
        "keygen makes a key pair (default ES256; RSA 2048 bits for RS and PS),\n"
        "writes the private key to --out (mode 0600, never over a file) and\n"
        "prints its kid, the RFC 7638 thumbprint. jwks prints the public part\n"
        "of PEM keys as a JWK Set, each with its thumbprint as kid (--kid\n"
        "names a single key otherwise), for MSVC_JWT_JWKS_FILE or to serve.\n",
        out);
}

static int fail(const char *what, int rc) {
  const char *detail = msvc_jwt_errmsg();

  fprintf(stderr, "msvc-jwt: %s: %s%s%s\n", what, msvc_strerror(rc), *detail ? ": " : "",
          detail);
  return 2;
}

/* Reads a whole stream or file (for "-" arguments and secrets). */
static char *slurp(FILE *f, size_t *len) {
  size_t cap = 4096, n = 0, got;
  char *buf = malloc(cap + 1);

  while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char *bigger = cap < MAX_TOOL_INPUT ? realloc(buf, cap * 2 + 1) : NULL;

      if (bigger == NULL) {
        free(buf);
        return NULL;
      }
      buf = bigger;
      cap *= 2;
    }
  }
  if (buf != NULL) {
    buf[n] = '\0';
    *len = n;
  }
  return buf;
}

static char *arg_or_stdin(const char *arg) {
  size_t len;
  char *s;

  if (strcmp(arg, "-") != 0)
    return strdup(arg);
  s = slurp(stdin, &len);
  while (s != NULL && len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
    s[--len] = '\0';
  return s;
}

static int load_secret(const char *path, const char *kid, msvc_jwt_key_t **key) {
  FILE *f = fopen(path, "rb");
  size_t len;
  char *s;
  int rc;

  if (f == NULL) {
    fprintf(stderr, "msvc-jwt: %s: %s\n", path, strerror(errno));
    return 2;
  }
  s = slurp(f, &len);
  fclose(f);
  if (s == NULL)
    return fail(path, MSVC_ENOMEM);
  rc = msvc_jwt_key_from_secret(s, len, 0, kid, key);
  memset(s, 0, len);
  free(s);
  return rc == MSVC_OK ? 0 : fail(path, rc);
}

static int parse_args(int argc, char **argv, cli_t *c) {
  static const struct option opts[] = {
      {"jwks", required_argument, NULL, 'j'},   {"key", required_argument, NULL, 'k'},
      {"secret-file", required_argument, NULL, 's'}, {"alg", required_argument, NULL, 'a'},
      {"iss", required_argument, NULL, 'i'},    {"aud", required_argument, NULL, 'u'},
      {"leeway", required_argument, NULL, 'l'}, {"now", required_argument, NULL, 'n'},
      {"typ", required_argument, NULL, 't'},    {"require", required_argument, NULL, 'r'},
      {"kid", required_argument, NULL, 'd'},    {"help", no_argument, NULL, 'h'},
      {"out", required_argument, NULL, 'o'},    {"pub", required_argument, NULL, 'p'},
      {"bits", required_argument, NULL, 'b'},
      {NULL, 0, NULL, 0}};
  int o;
  char *end;

  while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (o) {
    case 'j': c->jwks = optarg; break;
    case 'k': c->key = optarg; break;
    case 's': c->secret_file = optarg; break;
    case 'd': c->kid = optarg; break;
    case 'o': c->out = optarg; break;
    case 'p': c->pub = optarg; break;
    case 'b': {
      unsigned long b;

      errno = 0;
      b = strtoul(optarg, &end, 10);
      if (errno != 0 || *end != '\0' || *optarg < '0' || *optarg > '9' ||
          b < KEYGEN_RSA_BITS_MIN || b > KEYGEN_RSA_BITS_MAX || b % 8 != 0) {
        fprintf(stderr, "msvc-jwt: --bits: expected a multiple of 8 from %d to %d, not %s\n",
                KEYGEN_RSA_BITS_MIN, KEYGEN_RSA_BITS_MAX, optarg);
        return 2;
      }
      c->bits = (unsigned)b;
      break;
    }
    case 'i': c->iss = optarg; break;
    case 't': c->typ = optarg; break;
    case 'a':
      if (msvc_jwt_algs_parse(optarg, &c->algs) != MSVC_OK) {
        fprintf(stderr, "msvc-jwt: --alg: unknown algorithm in \"%s\" (HS256 ... ES512)\n", optarg);
        return 2;
      }
      break;
    case 'u':
    case 'r':
      if ((o == 'u' ? c->n_aud : c->n_required) >= MAX_LIST) {
        fprintf(stderr, "msvc-jwt: too many --%s\n", o == 'u' ? "aud" : "require");
        return 2;
      }
      if (o == 'u')
        c->aud[c->n_aud++] = optarg;
      else
        c->required[c->n_required++] = optarg;
      break;
    case 'l':
    case 'n':
      errno = 0;
      if (o == 'l')
        c->leeway = strtol(optarg, &end, 10);
      else
        c->now = strtoll(optarg, &end, 10);
      if (errno != 0 || *end != '\0' || *optarg == '\0' || (o == 'l' ? c->leeway : c->now) < 0 ||
          (o == 'l' && c->leeway > 86400L * 366)) {
        fprintf(stderr, "msvc-jwt: --%s: not an integer in range: %s\n",
                o == 'l' ? "leeway" : "now", optarg);
        return 2;
      }
      c->have_now |= o == 'n';
      break;
    case 'h': usage(stdout); return -1;
    default: usage(stderr); return 2;
    }
  }
  return 0;
}

static uint64_t fixed_clock(void *data) {
  return (uint64_t)*(long long *)data * 1000;
}

#ifdef MSVC_JWT_TOOL_FETCH
typedef struct fetch_once_s {
  msvc_jwks_fetcher_t *f;
  int err;
  int status;
} fetch_once_t;

static void on_fetched(void *data, int err) {
  fetch_once_t *o = data;
  msvc_jwks_stats_t st;

  msvc_jwks_fetcher_stats(o->f, &st);
  o->err = err;
  o->status = st.last_status;
  msvc_jwks_fetcher_close(o->f, NULL, NULL);
}

/* One fetch on a private loop; the loop ends when the fetcher is closed. */
static int fetch_jwks(const char *url, msvc_jwt_keyset_t *ks) {
  uv_loop_t loop;
  msvc_jwks_opts_t o;
  fetch_once_t st = {NULL, MSVC_ECANCELED, 0};
  int rc;

  if ((rc = uv_loop_init(&loop)) != 0)
    return rc;
  msvc_jwks_opts_init(&o);
  o.url = url;
  o.keyset = ks;
  o.on_fetch = on_fetched;
  o.on_fetch_data = &st;
  rc = msvc_jwks_fetcher_new(&loop, &o, &st.f);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (rc == MSVC_OK && st.err != MSVC_OK && st.status != 0 && st.status != 200)
    fprintf(stderr, "msvc-jwt: %s: answered with HTTP status %d\n", url, st.status);
  return rc != MSVC_OK ? rc : st.err;
}
#endif

static int build_keyset(const cli_t *c, msvc_jwt_keyset_t *ks) {
  msvc_jwt_key_t *key = NULL;
  int rc;

  if (c->jwks == NULL && c->key == NULL && c->secret_file == NULL) {
    fputs("msvc-jwt: verify needs --jwks, --key or --secret-file\n", stderr);
    return 2;
  }
  if (c->jwks != NULL) {
    if (strncmp(c->jwks, "http://", 7) == 0 || strncmp(c->jwks, "https://", 8) == 0) {
#ifdef MSVC_JWT_TOOL_FETCH
      if ((rc = fetch_jwks(c->jwks, ks)) != MSVC_OK)
        return fail(c->jwks, rc);
#else
      fputs("msvc-jwt: --jwks: this build cannot fetch a JWK Set from a URL; "
            "download it and pass the file\n", stderr);
      return 2;
#endif
    } else if ((rc = msvc_jwt_keyset_load_jwks_file(ks, c->jwks)) != MSVC_OK)
      return fail(c->jwks, rc);
  }
  if (c->key != NULL) {
    if ((rc = msvc_jwt_key_from_pem_file(c->key, 0, c->kid, &key)) != MSVC_OK)
      return fail(c->key, rc);
    rc = msvc_jwt_keyset_add(ks, key);
    msvc_jwt_key_free(key);
    if (rc != MSVC_OK)
      return fail(c->key, rc);
  }
  if (c->secret_file != NULL) {
    if ((rc = load_secret(c->secret_file, c->kid, &key)) != 0)
      return rc;
    rc = msvc_jwt_keyset_add(ks, key);
    msvc_jwt_key_free(key);
    if (rc != MSVC_OK)
      return fail(c->secret_file, rc);
  }
  return 0;
}

static int cmd_verify(cli_t *c, const char *token_arg) {
  msvc_jwt_keyset_t *ks = NULL;
  msvc_jwt_verifier_t *v = NULL;
  msvc_jwt_claims_t *claims = NULL;
  msvc_jwt_verify_opts_t o;
  char *token = arg_or_stdin(token_arg);
  int rc, status;

  if (token == NULL || msvc_jwt_keyset_new(&ks) != MSVC_OK) {
    free(token);
    return fail("verify", MSVC_ENOMEM);
  }
  status = build_keyset(c, ks);
  msvc_jwt_verify_opts_init(&o);
  if (c->algs != 0)
    o.algs = c->algs;
  o.issuer = c->iss;
  o.typ = c->typ;
  o.audiences = c->aud;
  o.n_audiences = c->n_aud;
  o.required = c->required;
  o.n_required = c->n_required;
  if (c->leeway >= 0)
    o.leeway_s = (uint32_t)c->leeway;
  if (c->have_now) {
    o.clock = fixed_clock;
    o.clock_data = &c->now;
  }
  if (status == 0 && (rc = msvc_jwt_verifier_new(&o, ks, &v)) != MSVC_OK)
    status = fail("verify", rc);
  if (status == 0) {
    rc = msvc_jwt_verify(v, token, strlen(token), &claims);
    if (rc == MSVC_OK) {
      printf("%s\n", msvc_jwt_claims_json(claims));
    } else if (msvc_jwt_result_name(rc) != NULL) {
      fprintf(stderr, "%s: %s\n", msvc_jwt_result_name(rc), msvc_jwt_errmsg());
      status = 1;
    } else {
      status = fail("verify", rc);
    }
  }
  msvc_jwt_claims_free(claims);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  free(token);
  return status;
}

static int cmd_sign(cli_t *c, const char *claims_arg) {
  msvc_jwt_key_t *key = NULL;
  msvc_jwt_alg_t alg = (msvc_jwt_alg_t)c->algs;
  char *claims, *token = NULL;
  int rc, status = 0;

  if (msvc_jwt_alg_name(alg) == NULL || (c->key == NULL) == (c->secret_file == NULL)) {
    fputs("msvc-jwt: sign needs one --alg and either --key or --secret-file\n", stderr);
    return 2;
  }
  if (c->key != NULL && (rc = msvc_jwt_key_from_pem_file(c->key, 0, c->kid, &key)) != MSVC_OK)
    return fail(c->key, rc);
  if (c->secret_file != NULL && (status = load_secret(c->secret_file, c->kid, &key)) != 0)
    return status;
  claims = arg_or_stdin(claims_arg);
  if (claims == NULL)
    status = fail("sign", MSVC_ENOMEM);
  else if ((rc = msvc_jwt_sign(key, alg, claims, &token)) != MSVC_OK)
    status = fail("sign", rc);
  else
    printf("%s\n", token);
  msvc_free(token);
  free(claims);
  msvc_jwt_key_free(key);
  return status;
}

static int cmd_keygen(const cli_t *c) {
  unsigned alg = c->algs != 0 ? c->algs : MSVC_JWT_ES256;

  if (!keygen_alg_ok(alg)) {
    fputs("msvc-jwt: keygen: --alg must name one of ES256, ES384, ES512, RS256, RS384,\n"
          "  RS512, PS256, PS384, PS512 (an HS secret is just random bytes:\n"
          "  head -c 32 /dev/urandom > secret)\n", stderr);
    return 2;
  }
  if (c->out == NULL) {
    fputs("msvc-jwt: keygen needs --out FILE for the private key\n", stderr);
    return 2;
  }
  if (c->bits != 0 && (alg & MSVC_JWT_ALGS_RSA) == 0) {
    fputs("msvc-jwt: keygen: --bits is for RSA keys (RS*, PS*); an EC key's size is its "
          "curve's\n", stderr);
    return 2;
  }
  return keygen_run(alg, c->bits != 0 ? c->bits : KEYGEN_RSA_BITS_MIN, c->out, c->pub);
}

/* One PEM key's public JWK, with its thumbprint (or kid) as kid; *jwk is
 * the caller's to msvc_free(). 0, or the exit status. */
static int public_jwk(const char *path, unsigned algs, const char *kid, char **jwk) {
  msvc_jwt_key_t *key = NULL;
  char print[44];
  int rc;

  rc = msvc_jwt_key_from_pem_file(path, algs, NULL, &key);
  if (rc == MSVC_OK && kid == NULL && (rc = msvc_jwt_key_thumbprint(key, print)) == MSVC_OK)
    kid = print;
  msvc_jwt_key_free(key);
  key = NULL;
  /* Loaded again to carry the kid (a key's id is fixed when it is made). */
  if (rc == MSVC_OK)
    rc = msvc_jwt_key_from_pem_file(path, algs, kid, &key);
  if (rc == MSVC_OK)
    rc = msvc_jwt_key_public_jwk(key, jwk);
  msvc_jwt_key_free(key);
  if (rc == MSVC_EINVAL) {
    fprintf(stderr, "msvc-jwt: %s: an HMAC secret is never published\n", path);
    return 2;
  }
  return rc == MSVC_OK ? 0 : fail(path, rc);
}

static int cmd_jwks(const cli_t *c, int n, char **paths) {
  char **jwks = calloc((size_t)n, sizeof(*jwks));
  int i, status = 0;

  if (c->kid != NULL && n != 1) {
    free(jwks);
    fputs("msvc-jwt: jwks: --kid names one key; with several, each gets its thumbprint\n",
          stderr);
    return 2;
  }
  if (jwks == NULL)
    return fail("jwks", MSVC_ENOMEM);
  /* Every key first: a set with a key missing is never printed. */
  for (i = 0; i < n && status == 0; i++)
    status = public_jwk(paths[i], c->algs, c->kid, &jwks[i]);
  if (status == 0) {
    printf("{\"keys\":[");
    for (i = 0; i < n; i++)
      printf("%s%s", i > 0 ? "," : "", jwks[i]);
    printf("]}\n");
  }
  for (i = 0; i < n; i++)
    msvc_free(jwks[i]);
  free(jwks);
  return status;
}

int main(int argc, char **argv) {
  cli_t c = {0};
  const char *cmd;
  int rc, nargs;

  c.leeway = -1;
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  cmd = argv[1];
  if ((rc = parse_args(argc - 1, argv + 1, &c)) != 0)
    return rc < 0 ? 0 : rc; /* -1: --help was printed */
  /* getopt_long() has moved the operands to the end. */
  nargs = argc - 1 - optind;
  if (strcmp(cmd, "keygen") == 0 && nargs == 0)
    return cmd_keygen(&c);
  if (strcmp(cmd, "jwks") == 0 && nargs >= 1)
    return cmd_jwks(&c, nargs, argv + 1 + optind);
  if (nargs != 1 || strcmp(cmd, "keygen") == 0 || strcmp(cmd, "jwks") == 0) {
    usage(stderr);
    return 2;
  }
  if (strcmp(cmd, "verify") == 0)
    return cmd_verify(&c, argv[argc - 1]);
  if (strcmp(cmd, "sign") == 0)
    return cmd_sign(&c, argv[argc - 1]);
  fprintf(stderr, "msvc-jwt: unknown command \"%s\"\n", cmd);
  usage(stderr);
  return 2;
}
