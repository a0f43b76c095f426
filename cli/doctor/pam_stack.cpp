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

std::vector<PamEntry> PamStackReader::auth_stack(const std::string& service) {
  std::vector<PamEntry> out;
  files_read_ = 0;
  top_ = service;
  expand(service, 0, out);
  return out;
}

void PamStackReader::note(std::string problem) {
  if (std::find(problems_.begin(), problems_.end(), problem) == problems_.end()) {
    problems_.push_back(std::move(problem));
  }
}

void PamStackReader::expand(const std::string& service, int depth, std::vector<PamEntry>& out) {
  if (depth > kMaxIncludeDepth) {
    note(service + ": includes nested too deep (a loop?)");
    return;
  }
  if (service.empty() || service.find('/') != std::string::npos) {
    problems_.push_back("include of '" + service + "' outside " + dir_ + " not followed");
    return;
  }
  if (files_read_ >= kMaxIncludedFiles) {
    note(top_ + ": too many included files (more than " + std::to_string(kMaxIncludedFiles) +
         "); the rest not followed");
    return;
  }
  ++files_read_;
  std::string path = dir_ + "/" + service;
  std::string error;
  auto text = files_.read(path, error);
  if (!text) {
    if (depth > 0) problems_.push_back(path + " (included): " + error);
    return;
  }
  std::vector<std::string_view> lines = totp::split_lines(*text);
  std::string joined;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string line(lines[i]);
    std::size_t hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    // A trailing backslash continues the line.
    std::string_view t = totp::trim(line);
    if (!t.empty() && t.back() == '\\') {
      joined += std::string(t.substr(0, t.size() - 1)) + " ";
      continue;
    }
    joined += line;
    std::string where = path + ":" + std::to_string(i + 1);
    std::vector<std::string> f = pam_fields(joined);
    joined.clear();
    if (f.empty()) continue;
    if (f[0] == "@include") {
      if (f.size() >= 2) {
        included_.insert(f[1]);
        expand(f[1], depth + 1, out);
      }
      continue;
    }
    std::string type = totp::to_lower(f[0]);
    if (!type.empty() && type.front() == '-') type.erase(0, 1);
    if (type != "auth" || f.size() < 3) continue;
    if (f[1] == "include" || f[1] == "substack") {
      included_.insert(f[2]);
      expand(f[2], depth + 1, out);
      continue;
    }
    PamEntry e;
    e.control = f[1];
    e.module = totp::base_name(f[2]);
    e.args.assign(f.begin() + 3, f.end());
    e.where = where;
    out.push_back(std::move(e));
  }
}

}  // namespace pbx::cli::doctor
