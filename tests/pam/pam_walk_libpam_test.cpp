// doctor's walk (cli/doctor/pam_walk.hpp) against the real libpam (issue 14): each stack is run
// through pam_start_confdir() once for every combination of module results, every module
// replaced by pam_exec.so running a script that logs it and succeeds or fails as told
// (pam_permit.so and pam_deny.so stay themselves). What libpam does over all combinations must
// be what the walk says: a password-only login, a failed code that still logs in, the module
// running although no password was accepted.
#include <gtest/gtest.h>
#include <security/pam_appl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "doctor/pam_stack.hpp"
#include "doctor/pam_walk.hpp"

namespace pbx::cli::doctor {
namespace {

namespace fs = std::filesystem;

int no_conversation(int, const struct pam_message**, struct pam_response**, void*) {
  return PAM_CONV_ERR;
}

struct Libpam {
  bool bypass = false;
  bool ignored_failure = false;
  bool unguarded = false;
};

class PamWalkLibpamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pbx-walk-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    script_ = dir_ + "/module";
    log_ = dir_ + "/log";
    std::ofstream s(script_);
    s << "#!/bin/sh\necho \"$2 $1\" >> " << log_ << "\n[ \"$1\" = ok ]\n";
    s.close();
    ::chmod(script_.c_str(), 0755);
    fs::create_directories(dir_ + "/pam.d");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `files` (service "svc") for every combination and compares with the walk.
  void compare(const std::map<std::string, std::string>& files) {
    MemoryFiles mf;
    for (const auto& [name, text] : files) mf.add("/x/" + name, text);
    PamStackReader reader("/x", mf);
    std::vector<PamEntry> flow = reader.auth_flow("svc");
    PamWalk walk = walk_auth_flow(flow);
    ASSERT_TRUE(walk.incomplete.empty());

    // The two-way lines, by FILE:LINE (each appears once in these stacks).
    std::vector<std::string> branches;
    std::map<std::string, ModuleRole> roles;
    for (const auto& e : flow) {
      if (e.kind != PamEntry::Kind::kModule) continue;
      ModuleRole r = module_role(e);
      std::string id = e.where.substr(3);  // "svc:2"
      roles[id] = r;
      if (r != ModuleRole::kPermit && r != ModuleRole::kDeny) branches.push_back(id);
    }
    ASSERT_LE(branches.size(), 8U);
    Libpam seen;
    bool any_ran = false;  // the harness works: pam_exec.so ran
    for (unsigned choice = 0; choice < (1U << branches.size()); ++choice) {
      std::map<std::string, bool> ok;
      for (std::size_t k = 0; k < branches.size(); ++k) ok[branches[k]] = ((choice >> k) & 1U) == 0;
      write(files, ok, roles);
      fs::remove(log_);
      pam_handle_t* ph = nullptr;
      struct pam_conv conv = {no_conversation, nullptr};
      std::string confdir = dir_ + "/pam.d";
      ASSERT_EQ(::pam_start_confdir("svc", "daemon", &conv, confdir.c_str(), &ph), PAM_SUCCESS);
      int rc = ::pam_authenticate(ph, PAM_SILENT);
      ::pam_end(ph, rc);
      bool password_ok = false, totp_ran = false, totp_failed = false;
      std::ifstream in(log_);
      std::string id, result;
      while (in >> id >> result) {
        any_ran = true;
        ModuleRole r = roles.at(id);
        if (r == ModuleRole::kTotp) {
          if (!password_ok && walk.has_password) seen.unguarded = true;
          totp_ran = true;
          totp_failed = totp_failed || result != "ok";
        }
        if (r == ModuleRole::kPassword && result == "ok") password_ok = true;
      }
      if (rc == PAM_SUCCESS && password_ok && !totp_ran) seen.bypass = true;
      if (rc == PAM_SUCCESS && totp_failed) seen.ignored_failure = true;
    }
    ASSERT_TRUE(any_ran);
    EXPECT_EQ(seen.bypass, walk.bypass.has_value()) << "bypass";
    EXPECT_EQ(seen.ignored_failure, walk.ignored_failure.has_value()) << "ignored failure";
    EXPECT_EQ(seen.unguarded, walk.unguarded.has_value()) << "unguarded";
  }

  // The files with every two-way module replaced by pam_exec.so and the script.
  void write(const std::map<std::string, std::string>& files, const std::map<std::string, bool>& ok,
             const std::map<std::string, ModuleRole>& roles) {
    for (const auto& [name, text] : files) {
      std::istringstream in(text);
      std::ofstream out(dir_ + "/pam.d/" + name);
      std::string line;
      int n = 0;
      while (std::getline(in, line)) {
        ++n;
        std::string id = name + ":" + std::to_string(n);
        auto f = pam_fields(line);
        // This libpam looks for a relative include in /etc/pam.d, not in the confdir.
        if (f.size() == 2 && f[0] == "@include") {
          out << "@include " << dir_ << "/pam.d/" << f[1] << "\n";
          continue;
        }
        if (f.size() == 3 && (f[1] == "include" || f[1] == "substack")) {
          out << f[0] << " " << f[1] << " " << dir_ << "/pam.d/" << f[2] << "\n";
          continue;
        }
        if (roles.count(id) == 0 || f.size() < 3 || ok.count(id) == 0) {
          out << line << "\n";
          continue;
        }
        out << f[0] << " " << f[1] << " pam_exec.so quiet " << script_ << " "
            << (ok.at(id) ? "ok" : "fail") << " " << id << "\n";
      }
    }
  }

  std::string dir_, script_, log_;
};

const char* const kCommonAuth =
    "auth [success=1 default=ignore] pam_unix.so\n"
    "auth requisite pam_deny.so\n"
    "auth required pam_permit.so\n";

TEST_F(PamWalkLibpamTest, DebianCommonAuth) {
  compare({{"common-auth", kCommonAuth},
           {"svc", "@include common-auth\nauth required pam_pbx_totp.so\n"}});
}
TEST_F(PamWalkLibpamTest, RhelSufficient) {
  compare({{"svc",
            "auth sufficient pam_unix.so\nauth required pam_pbx_totp.so\n"
            "auth required pam_deny.so\n"}});
}
TEST_F(PamWalkLibpamTest, SuccessDone) {
  compare({{"svc",
            "auth [success=done default=ignore] pam_unix.so\nauth requisite pam_deny.so\n"
            "auth required pam_pbx_totp.so\n"}});
}
TEST_F(PamWalkLibpamTest, JumpOver) {
  compare({{"svc",
            "auth [success=2 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n"
            "auth required pam_pbx_totp.so\nauth required pam_permit.so\n"}});
}
TEST_F(PamWalkLibpamTest, SubstackDoneAndDie) {
  compare({{"inner", "auth [success=done default=die] pam_unix.so\n"},
           {"svc", "auth substack inner\nauth required pam_pbx_totp.so\n"}});
  compare(
      {{"inner", "auth [success=done default=die] pam_unix.so\nauth required pam_pbx_totp.so\n"},
       {"svc", "auth substack inner\nauth required pam_permit.so\n"}});
}
TEST_F(PamWalkLibpamTest, JumpOverASubstackAndPastItsEnd) {
  compare({{"mfa", "auth required pam_pbx_totp.so\n"},
           {"svc",
            "auth [success=1 default=die] pam_unix.so\nauth substack mfa\n"
            "auth required pam_permit.so\n"}});
  compare({{"inner", "auth [success=5 default=die] pam_unix.so\n"},
           {"svc", "auth substack inner\nauth required pam_pbx_totp.so\n"}});
}
TEST_F(PamWalkLibpamTest, OptionalDefaultIgnoreSufficientReset) {
  compare({{"common-auth", kCommonAuth},
           {"svc", "@include common-auth\nauth optional pam_pbx_totp.so\n"}});
  compare({{"common-auth", kCommonAuth},
           {"svc", "@include common-auth\nauth [success=ok default=ignore] pam_pbx_totp.so\n"}});
  compare({{"svc",
            "auth requisite pam_unix.so\nauth sufficient pam_pbx_totp.so\n"
            "auth required pam_permit.so\n"}});
  compare({{"svc",
            "auth requisite pam_unix.so\nauth required pam_pbx_totp.so\n"
            "auth [default=reset] pam_permit.so\nauth required pam_permit.so\n"}});
}
TEST_F(PamWalkLibpamTest, RequiredPasswordAndUnknownModules) {
  compare({{"svc", "auth required pam_unix.so\nauth required pam_pbx_totp.so\n"}});
  compare({{"svc",
            "auth sufficient pam_rootok.so\nauth [success=2 default=ignore] pam_unix.so\n"
            "auth [success=1 default=ignore] pam_sss.so\nauth requisite pam_deny.so\n"
            "auth required pam_permit.so\nauth required pam_pbx_totp.so\n"
            "auth optional pam_cap.so\n"}});
}

}  // namespace
}  // namespace pbx::cli::doctor
