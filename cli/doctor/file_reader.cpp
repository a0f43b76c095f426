#include "file_reader.hpp"

#include <fnmatch.h>
#include <glob.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "pbx/totp/checked_file.hpp"

namespace pbx::cli::doctor {
namespace {

constexpr const char* kWhat = "file";

// The reason alone, worded as doctor always said it: the errno text, "not a regular file",
// "larger than 1 MiB".
std::string reason(const std::string& message, const std::string& path) {
  std::string r = message;
  std::string prefix = std::string(kWhat) + " " + path + ": ";
  if (r.rfind(prefix, 0) == 0) r.erase(0, prefix.size());
  for (const char* action : {"cannot open: ", "cannot stat: ", "cannot read: "}) {
    if (r.rfind(action, 0) == 0) r.erase(0, std::strlen(action));
  }
  if (r.rfind("larger than ", 0) == 0)
    r = "larger than " + std::to_string(kMaxTextFile >> 20) + " MiB";
  return r;
}

}  // namespace

std::optional<std::string> DiskFiles::read(const std::string& path, std::string& error) const {
  totp::FileCheck check;  // any owner and mode: doctor reports on files, it does not trust them
  check.owner = std::nullopt;
  check.forbidden_mode = 0;
  check.max_size = kMaxTextFile;
  check.follow_symlinks = true;
  auto text = totp::read_checked_text(path, check, kWhat);
  if (!text) {
    error = reason(text.error().message, path);
    return std::nullopt;
  }
  if (!*text) {
    error = std::strerror(ENOENT);
    return std::nullopt;
  }
  return std::move(*text);
}

std::vector<std::string> DiskFiles::glob(const std::string& pattern) const {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (std::size_t k = 0; k < g.gl_pathc; ++k) out.emplace_back(g.gl_pathv[k]);
  }
  ::globfree(&g);
  return out;
}

std::optional<std::string> MemoryFiles::read(const std::string& path, std::string& error) const {
  if (auto e = errors_.find(path); e != errors_.end()) {
    error = e->second;
    return std::nullopt;
  }
  auto it = files_.find(path);
  if (it == files_.end()) {
    error = std::strerror(ENOENT);
    return std::nullopt;
  }
  return it->second;
}

std::vector<std::string> MemoryFiles::glob(const std::string& pattern) const {
  std::set<std::string> names;  // sorted, as glob(3) sorts
  for (const auto* m : {&files_, &errors_}) {
    for (const auto& [path, unused] : *m) {
      if (::fnmatch(pattern.c_str(), path.c_str(), FNM_PATHNAME | FNM_PERIOD) == 0) {
        names.insert(path);
      }
    }
  }
  return {names.begin(), names.end()};
}

}  // namespace pbx::cli::doctor
