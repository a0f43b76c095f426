#include "pam_stack.hpp"

#include <algorithm>

#include "pbx/totp/strings.hpp"

namespace pbx::cli::doctor {
std::vector<std::string> pam_fields(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    std::size_t start = i;
    if (line[i] == '[') {
      // Shown to people: white space inside the brackets (a continued line) becomes one space.
      std::size_t close = line.find(']', i);
      i = close == std::string_view::npos ? line.size() : close + 1;
      std::string field;
      for (char c : line.substr(start, i - start)) {
        bool space = c == ' ' || c == '\t';
        if (space && !field.empty() && field.back() == ' ') continue;
        field.push_back(space ? ' ' : c);
      }
      out.push_back(std::move(field));
      continue;
    }
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    out.emplace_back(line.substr(start, i - start));
  }
  return out;
}

std::vector<PamEntry> PamStackReader::auth_flow(const std::string& service) {
  std::vector<PamEntry> out;
  files_read_ = 0;
  top_ = service;
  expand(service, 0, 0, out);
  return out;
}

std::vector<PamEntry> modules_only(std::vector<PamEntry> flow) {
  flow.erase(std::remove_if(flow.begin(), flow.end(),
                            [](const PamEntry& e) { return e.kind != PamEntry::Kind::kModule; }),
             flow.end());
  return flow;
}

std::vector<PamEntry> PamStackReader::auth_stack(const std::string& service) {
  return modules_only(auth_flow(service));
}

void PamStackReader::note(std::string problem) {
  if (std::find(problems_.begin(), problems_.end(), problem) == problems_.end()) {
    problems_.push_back(std::move(problem));
  }
}

PamStackReader::Expanded PamStackReader::expand(const std::string& service, int depth, int level,
                                                std::vector<PamEntry>& out) {
  if (depth > kMaxIncludeDepth) {
    note(service + ": includes nested too deep (a loop?)");
    return Expanded::kFailed;
  }
  if (service.empty() || service.find('/') != std::string::npos) {
    problems_.push_back("include of '" + service + "' outside " + dir_ + " not followed");
    return Expanded::kNotFollowed;
  }
  if (files_read_ >= kMaxIncludedFiles) {
    note(top_ + ": too many included files (more than " + std::to_string(kMaxIncludedFiles) +
         "); the rest not followed");
    return Expanded::kNotFollowed;
  }
  ++files_read_;
  std::string path = dir_ + "/" + service;
  std::string error;
  auto text = files_.read(path, error);
  if (!text) {
    if (depth > 0) problems_.push_back(path + " (included): " + error);
    return Expanded::kFailed;
  }
  std::vector<std::string_view> lines = totp::split_lines(*text);
  std::string joined;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string line(lines[i]);
    // As libpam (pam_line.c): a line continues when it ends in a backslash (then only spaces or
    // tabs), judged before the comment is removed, and a line with a '#' never continues. So
    // "auth required pam_x.so \\ # note" ends there, and the next line is a line of its own.
    std::size_t end = line.find_last_not_of(" \t");
    const bool continues =
        line.find('#') == std::string::npos && end != std::string::npos && line[end] == '\\';
    std::size_t hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    if (continues) {
      joined += line.substr(0, end) + " ";
      continue;
    }
    joined += line;
    std::string where = path + ":" + std::to_string(i + 1);
    std::vector<std::string> f = pam_fields(joined);
    joined.clear();
    if (f.empty()) continue;
    // An include libpam cannot load becomes an entry that fails (pam_handlers.c); one doctor
    // does not follow, an entry that may do anything.
    auto include = [&](const std::string& name, const std::string& control, int at) {
      included_.insert(name);
      Expanded r = expand(name, depth + 1, at, out);
      if (r == Expanded::kRead) return;
      PamEntry e;
      e.control = control;
      e.module = name.find('/') == std::string::npos ? name : "";
      e.where = where;
      e.kind = r == Expanded::kFailed ? PamEntry::Kind::kFail : PamEntry::Kind::kUnknown;
      e.level = level;
      out.push_back(std::move(e));
    };
    if (f[0] == "@include") {
      if (f.size() >= 2) include(f[1], "@include", level);
      continue;
    }
    std::string type = totp::to_lower(f[0]);
    if (!type.empty() && type.front() == '-') type.erase(0, 1);
    if (type != "auth" || f.size() < 3) continue;
    // libpam (pam_handlers.c) takes these two keywords in any case, as the control words.
    const std::string control = totp::to_lower(f[1]);
    if (control == "include") {
      include(f[2], f[1], level);
      continue;
    }
    if (control == "substack") {
      PamEntry e;
      e.control = f[1];
      e.module = f[2].find('/') == std::string::npos ? f[2] : "";
      e.where = where;
      e.kind = PamEntry::Kind::kSubstack;
      e.level = level;
      out.push_back(std::move(e));
      include(f[2], f[1], level + 1);
      continue;
    }
    PamEntry e;
    e.control = f[1];
    e.module = totp::base_name(f[2]);
    e.args.assign(f.begin() + 3, f.end());
    e.where = where;
    e.path = f[2];
    e.level = level;
    out.push_back(std::move(e));
  }
  return Expanded::kRead;
}

}  // namespace pbx::cli::doctor
