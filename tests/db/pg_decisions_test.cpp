// The decisions of pbx_store_postgresql.so that a real connection cannot reach in the test
// environment, on the plugin's own C files (pg_conn.c, pg_params.c) compiled into this binary:
// no cluster, no dlopen. The plugin itself is tested in pg_plugin_test.cpp.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <string>

extern "C" {
#include "pg_internal.h"
}

namespace {

// H1: under verify-ca/verify-full a connection that is not TLS (GSSAPI encryption, which libpq
// prefers over TLS whatever sslmode says) is refused; a Unix socket never uses TLS and is kept.
// On a real connection the refusal needs a KDC, which the test environment does not have.
TEST(DbGssencDecision, VerifyModeWithoutTlsIsRefused) {
  for (const char* mode : {"verify-ca", "verify-full"}) {
    EXPECT_EQ(pbx_pg_tls_missing(mode, /*ssl_in_use=*/0, /*unix_socket=*/0), 1) << mode;
    EXPECT_EQ(pbx_pg_tls_missing(mode, 1, 0), 0) << mode;
    EXPECT_EQ(pbx_pg_tls_missing(mode, 0, 1), 0) << mode;
  }
  for (const char* mode : {"disable", "allow", "prefer", "require"}) {
    EXPECT_EQ(pbx_pg_tls_missing(mode, 0, 0), 0) << mode;
  }
  EXPECT_EQ(pbx_pg_tls_missing(nullptr, 0, 0), 0);
}

// The parameters handed to libpq for a conninfo: gssencmode=disable unless it is named.
std::string passed(const char* conninfo, const char* keyword) {
  char* error = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo, &error);
  EXPECT_NE(opts, nullptr) << (error != nullptr ? error : "");
  PQfreemem(error);
  if (opts == nullptr) return "<parse error>";
  pbx_pg_params p{};
  pbx_db_error err{};
  std::string value = "<not passed>";
  if (pbx_pg_build_params(opts, &p, &err) != 0) {
    value = std::string("<refused: ") + err.message + ">";
  } else {
    for (size_t i = 0; i < p.n; ++i) {
      if (std::string(p.keys[i]) == keyword) value = p.values[i] != nullptr ? p.values[i] : "";
    }
    pbx_pg_free_params(&p);
  }
  PQconninfoFree(opts);
  return value;
}

TEST(DbGssencDecision, GssencmodeIsDisableUnlessNamed) {
  const char* old = std::getenv("PGGSSENCMODE");
  std::string saved = old != nullptr ? old : "";
  ::setenv("PGGSSENCMODE", "require", 1);  // the caller's environment never chooses it
  EXPECT_EQ(passed("host=127.0.0.1 dbname=x", "gssencmode"), "disable");
  EXPECT_EQ(passed("host=127.0.0.1 dbname=x gssencmode=", "gssencmode"), "disable");
  EXPECT_EQ(passed("postgresql://127.0.0.1/x", "gssencmode"), "disable");
  EXPECT_EQ(passed("host=127.0.0.1 gssencmode=prefer", "gssencmode"), "prefer");
  EXPECT_EQ(passed("host=127.0.0.1 gssencmode=require", "gssencmode"), "require");
  EXPECT_EQ(passed("postgresql://127.0.0.1/x?gssencmode=prefer", "gssencmode"), "prefer");
  EXPECT_EQ(passed("host=127.0.0.1 gssencmode=disable", "gssencmode"), "disable");
  // sslmode keeps libpq's compiled default.
  EXPECT_EQ(passed("host=127.0.0.1", "sslmode"), "prefer");
  if (old != nullptr) {
    ::setenv("PGGSSENCMODE", saved.c_str(), 1);
  } else {
    ::unsetenv("PGGSSENCMODE");
  }
}

}  // namespace
