/* What libcrypto costs a process that has nothing loaded yet (a cold PAM host: login, su,
 * pamtester), step by step, for instruction counts (valgrind --tool=callgrind) and syscall
 * counts (strace -c); bench/login/PROFILE-issue20.md. Links only libc and libdl: libcrypto is
 * dlopen()ed the way libpam's dlopen of the module brings it in.
 *   usage: crypto_load MODE
 *   none      load nothing (the floor)
 *   load      dlopen libcrypto.so.3, call nothing
 *   init      load + OPENSSL_init_crypto(0): what the first EVP call does implicitly (the
 *             config file is loaded, as libcrypto's default)
 *   noconf    load + OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG)
 *   evp_mac   load + one HMAC-SHA1 through EVP_MAC_fetch / EVP_MAC_CTX (what the module does)
 *   evp_noconf  the same after OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG)
 *   hmac      load + one HMAC-SHA1 through the one-shot HMAC() (EVP_sha1())
 *   sha1      load + the deprecated low-level SHA1() (no provider, no HMAC: the floor of any
 *             libcrypto use)
 *   nettle    for comparison, not used by pbx-mfa: dlopen libnettle.so.8 (GnuTLS's crypto
 *             library) and one HMAC-SHA1 through nettle_hmac_sha1_*
 * Exit status 0 when the step worked. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NO_LOAD_CONFIG 0x00000080L /* OPENSSL_INIT_NO_LOAD_CONFIG */

typedef struct params_st {
  const char* key;
  unsigned int data_type;
  void* data;
  size_t data_size;
  size_t return_size;
} params;

static void* sym(void* h, const char* name) {
  void* p = dlsym(h, name);
  if (p == NULL) fprintf(stderr, "crypto_load: no %s\n", name);
  return p;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const char* mode = argv[1];
  if (strcmp(mode, "none") == 0) return 0;
  if (strcmp(mode, "nettle") == 0) {
    void* n = dlopen("libnettle.so.8", RTLD_NOW | RTLD_LOCAL);
    if (n == NULL) return 1;
    void (*set_key)(void*, size_t, const uint8_t*) =
        (void (*)(void*, size_t, const uint8_t*))sym(n, "nettle_hmac_sha1_set_key");
    void (*upd)(void*, size_t, const uint8_t*) =
        (void (*)(void*, size_t, const uint8_t*))sym(n, "nettle_hmac_sha1_update");
    void (*dig)(void*, size_t, uint8_t*) =
        (void (*)(void*, size_t, uint8_t*))sym(n, "nettle_hmac_sha1_digest");
    if (!set_key || !upd || !dig) return 1;
    static const uint8_t k[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                  11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    static const uint8_t m[8] = {0, 0, 0, 0, 0, 0x35, 0xA4, 0x1B};
    _Alignas(16) unsigned char ctx[2048]; /* > sizeof(struct hmac_sha1_ctx) */
    uint8_t d[20];
    set_key(ctx, sizeof k, k);
    upd(ctx, sizeof m, m);
    dig(ctx, sizeof d, d);
    return 0;
  }
  void* h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) return 1;
  if (strcmp(mode, "load") == 0) return 0;

  static const unsigned char key[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                        11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  static const unsigned char msg[8] = {0, 0, 0, 0, 0, 0x35, 0xA4, 0x1B};
  unsigned char out[64];
  int (*init)(uint64_t, const void*) =
      (int (*)(uint64_t, const void*))sym(h, "OPENSSL_init_crypto");
  if (init == NULL) return 1;
  if (strcmp(mode, "init") == 0) return init(0, NULL) == 1 ? 0 : 1;
  if (strcmp(mode, "noconf") == 0) return init(NO_LOAD_CONFIG, NULL) == 1 ? 0 : 1;

  if (strcmp(mode, "evp_mac") == 0 || strcmp(mode, "evp_noconf") == 0) {
    if (strcmp(mode, "evp_noconf") == 0 && init(NO_LOAD_CONFIG, NULL) != 1) return 1;
    void* (*fetch)(void*, const char*, const char*) =
        (void* (*)(void*, const char*, const char*))sym(h, "EVP_MAC_fetch");
    void* (*ctx_new)(void*) = (void* (*)(void*))sym(h, "EVP_MAC_CTX_new");
    int (*mac_init)(void*, const unsigned char*, size_t, const params*) =
        (int (*)(void*, const unsigned char*, size_t, const params*))sym(h, "EVP_MAC_init");
    int (*update)(void*, const unsigned char*, size_t) =
        (int (*)(void*, const unsigned char*, size_t))sym(h, "EVP_MAC_update");
    int (*final)(void*, unsigned char*, size_t*, size_t) =
        (int (*)(void*, unsigned char*, size_t*, size_t))sym(h, "EVP_MAC_final");
    params (*utf8)(const char*, char*, size_t) =
        (params(*)(const char*, char*, size_t))sym(h, "OSSL_PARAM_construct_utf8_string");
    params (*end)(void) = (params(*)(void))sym(h, "OSSL_PARAM_construct_end");
    if (!fetch || !ctx_new || !mac_init || !update || !final || !utf8 || !end) return 1;
    void* mac = fetch(NULL, "HMAC", NULL);
    void* ctx = mac ? ctx_new(mac) : NULL;
    char digest[] = "SHA1";
    params p[2] = {utf8("digest", digest, 0), end()};
    size_t len = 0;
    if (ctx == NULL || mac_init(ctx, key, sizeof key, p) != 1 ||
        update(ctx, msg, sizeof msg) != 1 || final(ctx, out, &len, sizeof out) != 1 || len != 20) {
      return 1;
    }
    return 0;
  }
  if (strcmp(mode, "hmac") == 0) {
    const void* (*sha1)(void) = (const void* (*)(void))sym(h, "EVP_sha1");
    unsigned char* (*hmac)(const void*, const void*, int, const unsigned char*, size_t,
                           unsigned char*, unsigned int*) =
        (unsigned char* (*)(const void*, const void*, int, const unsigned char*, size_t,
                            unsigned char*, unsigned int*))sym(h, "HMAC");
    if (!sha1 || !hmac) return 1;
    unsigned int len = 0;
    return hmac(sha1(), key, sizeof key, msg, sizeof msg, out, &len) != NULL && len == 20 ? 0 : 1;
  }
  if (strcmp(mode, "sha1") == 0) {
    unsigned char* (*sha1)(const unsigned char*, size_t, unsigned char*) =
        (unsigned char* (*)(const unsigned char*, size_t, unsigned char*))sym(h, "SHA1");
    if (!sha1) return 1;
    return sha1(msg, sizeof msg, out) != NULL ? 0 : 1;
  }
  return 2;
}
