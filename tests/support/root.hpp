// PBX_SKIP_UNLESS_ROOT(why): skips a GoogleTest test (ctest shows it as Skipped) without root.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

// For the tests whose files must be root-owned, or that chown to other users: as a normal user
// they cannot pass, and `ctest` on a developer box should end in skips, not failures. Use it in
// a void function (a fixture's SetUp or a test body); a derived fixture's SetUp that calls the
// base one returns on IsSkipped() before doing more.
#define PBX_SKIP_UNLESS_ROOT(why)                             \
  do {                                                        \
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: " why; \
  } while (0)
