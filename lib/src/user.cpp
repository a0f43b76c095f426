#include "pbx/totp/user.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pbx::totp {
namespace {

// Scratch space for the get*_r lookups, which write what they return into it: not zero-filled
// (zeroing 16 KiB cost a login about a third of the getpwnam_r itself).
class LookupBuffer {
 public:
  LookupBuffer() = default;
  char* data() { return data_.get(); }
  std::size_t size() const { return size_; }
  // Doubles it, up to `cap`; false when it is already that large.
  bool grow(std::size_t cap) {
    if (size_ >= cap) return false;
    size_ *= 2;
    data_ = std::make_unique_for_overwrite<char[]>(size_);
    return true;
  }

 private:
  std::size_t size_ = 16384;
  std::unique_ptr<char[]> data_ = std::make_unique_for_overwrite<char[]>(size_);
};

}  // namespace

Result<User> lookup_user(std::string_view name) {
  if (name.empty() || name.size() > 256 || name.find('\0') != std::string_view::npos) {
    return make_error(Errc::kNoUser, "invalid user name");
  }
  std::string n(name);
  LookupBuffer buf;
  passwd pw{};
  passwd* found = nullptr;
  int rc = 0;
  while ((rc = getpwnam_r(n.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.grow(1U << 20)) {
  }
  if (rc != 0) return make_error(Errc::kIo, "cannot look up user '" + n + "'");
  if (found == nullptr) return make_error(Errc::kNoUser, "no such user '" + n + "'");
  User u;
  u.name = pw.pw_name;
  u.uid = pw.pw_uid;
  u.gid = pw.pw_gid;
  u.home = pw.pw_dir != nullptr ? pw.pw_dir : "";
  return u;
}

std::vector<std::string> all_user_names() {
  std::vector<std::string> names;
  setpwent();
  while (passwd* pw = getpwent()) {
    if (pw->pw_name != nullptr) names.emplace_back(pw->pw_name);
  }
  endpwent();
  return names;
}

std::vector<std::string> user_groups(const User& user) {
  std::vector<std::string> names;
  int count = 64;
  std::vector<gid_t> gids(static_cast<std::size_t>(count));
  while (getgrouplist(user.name.c_str(), user.gid, gids.data(), &count) < 0) {
    if (count <= static_cast<int>(gids.size()) || count > 65536) return names;
    gids.resize(static_cast<std::size_t>(count));
  }
  gids.resize(static_cast<std::size_t>(count));
  LookupBuffer buf;
  for (gid_t gid : gids) {
    group gr{};
    group* found = nullptr;
    int rc = 0;
    while ((rc = getgrgid_r(gid, &gr, buf.data(), buf.size(), &found)) == ERANGE &&
           buf.grow(1U << 22)) {
    }
    if (rc == 0 && found != nullptr) names.emplace_back(gr.gr_name);
  }
  return names;
}

Result<std::optional<Group>> lookup_group(std::string_view name) {
  if (name.empty() || name.size() > 256 || name.find('\0') != std::string_view::npos) {
    return std::optional<Group>{};
  }
  std::string n(name);
  LookupBuffer buf;
  group gr{};
  group* found = nullptr;
  int rc = 0;
  while ((rc = getgrnam_r(n.c_str(), &gr, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.grow(1U << 22)) {
  }
  // Only "0 and no entry" means no such group; any error code (EIO, ENOENT from a module that
  // could not reach its directory, ERANGE past the cap) may hide a member: fail closed.
  if (rc != 0) return make_error(Errc::kIo, "cannot look up group '" + n + "'");
  if (found == nullptr) return std::optional<Group>{};
  Group g;
  g.gid = gr.gr_gid;
  for (char** m = gr.gr_mem; m != nullptr && *m != nullptr; ++m) g.members.emplace_back(*m);
  return std::optional<Group>{std::move(g)};
}

Result<std::string> expand_path_template(std::string_view templ, const User& user) {
  std::string out;
  for (std::size_t i = 0; i < templ.size(); ++i) {
    char c = templ[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (i + 1 >= templ.size()) return make_error(Errc::kConfig, "secret_path: dangling %");
    char e = templ[++i];
    if (e == 'u') {
      if (user.name.find('/') != std::string::npos || user.name == "." || user.name == "..") {
        return make_error(Errc::kInvalid, "user name cannot be part of a path");
      }
      out += user.name;
    } else if (e == 'h') {
      if (user.home.empty() || user.home.front() != '/') {
        return make_error(Errc::kInvalid,
                          "user '" + user.name + "' has no absolute home directory");
      }
      out += user.home;
    } else if (e == 'U') {
      out += std::to_string(user.uid);
    } else if (e == '%') {
      out.push_back('%');
    } else {
      return make_error(Errc::kConfig, "secret_path: unknown escape %" + std::string(1, e));
    }
  }
  if (out.empty() || out.front() != '/')
    return make_error(Errc::kConfig, "secret_path: not absolute");
  return out;
}

}  // namespace pbx::totp
