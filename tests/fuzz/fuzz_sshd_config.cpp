// doctor's sshd_config reader on files in memory (virtual_files.hpp: the input is
// /etc/ssh/sshd_config and the files after it, Include globs matched against their names).
// Read twice, it must come out the same; only the checked keys are kept, each pointing at a
// line of a file that exists; Includes end within the depth and file caps.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "doctor/sshd_config.hpp"
#include "fuzz_check.hpp"
#include "virtual_files.hpp"

using namespace pbx::cli::doctor;

namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string top = "/etc/ssh/sshd_config";
  VirtualFiles vf = split_into_files(input, "/etc/ssh", "sshd_config");
  std::string error;
  auto cfg = read_sshd_config(top, vf.files, error);
  std::string error2;
  auto cfg2 = read_sshd_config(top, vf.files, error2);
  FUZZ_CHECK(cfg.has_value() == cfg2.has_value() && error == error2);
  if (!cfg) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  static const std::set<std::string> kKeys = {"usepam", "kbdinteractiveauthentication",
                                              "authenticationmethods", "passwordauthentication",
                                              "pubkeyauthentication"};
  FUZZ_CHECK(cfg->files >= 1 && cfg->files <= kMaxIncludedFiles);
  FUZZ_CHECK(cfg->files == cfg2->files && cfg->match_blocks == cfg2->match_blocks);
  FUZZ_CHECK(cfg->problems == cfg2->problems && cfg->match_overrides == cfg2->match_overrides);
  FUZZ_CHECK(cfg->global.size() == cfg2->global.size());
  for (const auto& [key, v] : cfg->global) {
    FUZZ_CHECK(kKeys.count(key) == 1);
    FUZZ_CHECK(cfg2->global.at(key).value == v.value && cfg2->global.at(key).where == v.where);
    FUZZ_CHECK(v.value.empty() || (!blank(v.value.front()) && !blank(v.value.back())));
    FUZZ_CHECK(names_a_line(vf, v.where));
  }
  // "PATH:LINE: line"; a file name may hold ": " too, so some split must name a line.
  for (const auto& m : cfg->match_overrides) {
    bool found = false;
    for (std::size_t sep = m.find(": "); sep != std::string::npos && !found;
         sep = m.find(": ", sep + 1)) {
      found = names_a_line(vf, m.substr(0, sep));
    }
    FUZZ_CHECK(found);
  }
  FUZZ_CHECK(cfg->match_overrides.empty() || cfg->match_blocks > 0);
  return 0;
}
