// doctor's PAM-stack reader on a directory of files in memory (virtual_files.hpp: the input is
// the service "sshd" and the files after it). Every stack is read twice and must come out the
// same; every entry points at a line of a readable file in the directory; loops and fan-outs
// end.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "doctor/pam_stack.hpp"
#include "fuzz_check.hpp"
#include "virtual_files.hpp"

using namespace pbx::cli::doctor;

namespace {

const std::string kDir = "/etc/pam.d";
constexpr std::size_t kMaxServices = 16;  // a few services of the directory, like doctor

// Inside the directory, as the reader only follows names without '/'.
bool in_dir(const std::string& where) {
  std::string path = where.substr(0, where.rfind(':'));
  return path.rfind(kDir + "/", 0) == 0 && path.find('/', kDir.size() + 1) == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  VirtualFiles vf = split_into_files(input, kDir, "sshd");
  PamStackReader reader(kDir, vf.files);
  PamStackReader again(kDir, vf.files);
  std::set<std::string> done;
  for (const auto& service : vf.names) {
    if (done.size() >= kMaxServices) break;
    if (!done.insert(service).second) continue;
    auto stack = reader.auth_stack(service);
    auto stack2 = again.auth_stack(service);
    FUZZ_CHECK(stack.size() == stack2.size());
    for (std::size_t i = 0; i < stack.size(); ++i) {
      const PamEntry& e = stack[i];
      FUZZ_CHECK(e.control == stack2[i].control && e.module == stack2[i].module &&
                 e.args == stack2[i].args && e.where == stack2[i].where);
      // The module may be empty ("dir/" names none), but is a base name.
      FUZZ_CHECK(!e.control.empty());
      FUZZ_CHECK(e.module.find('/') == std::string::npos);
      FUZZ_CHECK(names_a_line(vf, e.where) && in_dir(e.where));
    }
  }
  FUZZ_CHECK(reader.problems() == again.problems());
  FUZZ_CHECK(reader.included() == again.included());
  // A loop is reported once per name, not once per way into it.
  std::set<std::string> unique(reader.problems().begin(), reader.problems().end());
  for (const auto& p : unique) {
    if (p.find("nested too deep") == std::string::npos) continue;
    std::size_t n = 0;
    for (const auto& q : reader.problems()) n += q == p;
    FUZZ_CHECK(n == 1);
  }
  return 0;
}
