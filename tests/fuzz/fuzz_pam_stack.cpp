// doctor's PAM-stack reader on a directory of files in memory (virtual_files.hpp: the input is
// the service "sshd" and the files after it). Every stack is read twice and must come out the
// same; every entry points at a line of a file that exists; loops and fan-outs end.
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

std::size_t line_count(const std::string& text) {
  std::size_t n = 0;
  for (char c : text) n += c == '\n';
  return n + (!text.empty() && text.back() != '\n');
}

// "PATH:LINE" names a file the reader could read, and one of its lines.
void check_where(const FileReader& files, const std::string& where) {
  std::size_t colon = where.rfind(':');
  FUZZ_CHECK(colon != std::string::npos);
  std::string path = where.substr(0, colon);
  FUZZ_CHECK(path.rfind(kDir + "/", 0) == 0);
  FUZZ_CHECK(path.find('/', kDir.size() + 1) == std::string::npos);
  std::string error;
  auto text = files.read(path, error);
  FUZZ_CHECK(text.has_value());
  std::size_t line = std::stoul(where.substr(colon + 1));
  FUZZ_CHECK(line >= 1 && line <= line_count(*text));
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
      FUZZ_CHECK(!e.control.empty() && !e.module.empty());
      FUZZ_CHECK(e.module.find('/') == std::string::npos);
      check_where(vf.files, e.where);
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
