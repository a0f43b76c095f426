// Test helpers for temp-code, require and list: the CLI in-process (CliTest), a snapshot of
// every file the store wrote, and the library's verifier on the same store.
#pragma once

#include <dirent.h>
#include <sys/stat.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "enroll_fixture.hpp"
#include "pbx/totp/verifier.hpp"
#include "root.hpp"
#include "session.hpp"

namespace pbx::cli::testing {

class HelpdeskTest : public CliTest {
 protected:
  void SetUp() override {
    PBX_SKIP_UNLESS_ROOT("the state and enrolled files must be root-owned");
    CliTest::SetUp();
  }

  // Every regular file under the secrets and state directories, with its content.
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> files;
    for (const std::string& dir : {secrets_dir_, state_dir_}) {
      DIR* d = ::opendir(dir.c_str());
      if (d == nullptr) continue;
      while (dirent* e = ::readdir(d)) {
        std::string path = dir + "/" + e->d_name;
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        files[path] = totp::testing::read_file(path).value_or("<unreadable>");
      }
      ::closedir(d);
    }
    return files;
  }

  // Runs a command expecting `exit`; returns its stdout as JSON (null when not JSON).
  nlohmann::json json_of(std::vector<std::string> args, int exit) {
    clear();
    EXPECT_EQ(run_cli(std::move(args)), exit) << err();
    if (out().empty()) return nullptr;
    return nlohmann::json::parse(out(), nullptr, false);
  }

  void enroll(const std::string& name) {
    clear();
    ASSERT_EQ(run_cli({"enroll", "--user", name, "--no-confirm", "--qr", "none"}), 0) << err();
  }

  std::optional<totp::Verdict> verify(const std::string& name, const std::string& code) {
    auto c = config();
    auto s = store();
    totp::Verifier v(c, *s, clock_);
    return verdict_of(v.verify(user(name), code));
  }

  nlohmann::json status_json(const std::string& name) {
    clear();
    int rc = run_cli({"status", "--user", name, "--json"});
    EXPECT_TRUE(rc == 0 || rc == 3) << rc << " " << err();
    if (out().empty()) return nullptr;
    return nlohmann::json::parse(out(), nullptr, false);
  }
};

}  // namespace pbx::cli::testing
