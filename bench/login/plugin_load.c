/* Time to load the database plugin in a fresh process shaped like sshd (OpenSSL loaded and
 * initialised first, as in sshd_like_host): dlopen of pbx_store_postgresql.so with the library's
 * flags (libpq and what it needs come with it) and a call of its entry point. Prints the
 * microseconds the load took (in-process clock) on stdout.
 *   usage: plugin_load PLUGIN_SO | plugin_load --none
 * --none loads nothing (prints 0): the baseline for timing the whole process from outside, which
 * adds what a loaded plugin costs at exit (destructors, unmapping) to the load itself. */
#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  int none = strcmp(argv[1], "--none") == 0;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
  EVP_Digest("x", 1, md, &len, EVP_sha256(), NULL);
  if (none) {
    puts("0");
    return 0;
  }
  double t0 = now_us();
  void* handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  void* entry = handle ? dlsym(handle, "pbx_db_plugin_v1") : NULL;
  const void* api = entry ? ((const void* (*)(void))entry)() : NULL;
  double t1 = now_us();
  if (api == NULL) {
    const char* why = dlerror();
    fprintf(stderr, "plugin_load: %s\n", why ? why : "no pbx_db_plugin_v1");
    return 1;
  }
  printf("%.1f\n", t1 - t0);
  return 0;
}
