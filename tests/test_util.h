// Helpers shared by the tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace affinity::testing {

// A fresh directory under the system temp dir, removed (with its contents) on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("affinity_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string Sub(const std::string& name) const { return (path_ / name).string(); }
  // Writes `content` to a file in the directory and returns its path.
  std::string Write(const std::string& name, const std::string& content) const {
    std::string p = Sub(name);
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  std::filesystem::path path_;
};

inline std::string DataPath(const std::string& name) {
  return std::string(AFFINITY_TEST_DATA_DIR) + "/" + name;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The names of the files under `dir` (recursively) whose bytes contain `needle`, sorted.
inline std::vector<std::string> FilesHolding(const std::string& dir, const std::string& needle) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (ReadFile(entry.path().string()).find(needle) != std::string::npos) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// What a run of the `affinity` binary did.
struct CliRun {
  int exit_code = -1;  // -1 if it did not exit normally
  std::string output;  // stdout, and stderr too unless it was dropped
};

// Runs `affinity <args>` through the shell, with `env` ("NAME=value ...") before it. stderr goes
// into the output, or is dropped with keep_stderr = false (for output parsed as JSON).
inline CliRun RunCli(const std::string& args, const std::string& env = "",
                     bool keep_stderr = true) {
  const std::string command = env + " " + std::string(AFFINITY_CLI_PATH) + " " + args +
                              (keep_stderr ? " 2>&1" : " 2>/dev/null");
  CliRun result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace affinity::testing
