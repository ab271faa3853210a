#include "affinity/snapshot.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <zlib.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "affinity/store.h"
#include "affinity/time_util.h"

namespace affinity {
namespace {

constexpr char kItemWeightsFile[] = "item_weights.f32";
constexpr char kColdStartFile[] = "cold_start.json";
constexpr char kColdStartWeightsFile[] = "cold_start.f32";

// Reads the number `key` of `j` into `out` when present; InvalidArgument (naming the key) for a
// value that is not a number.
Status OptionalNumber(const nlohmann::json& j, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::Ok();
  if (!it->is_number()) return Status::InvalidArgument("must be a number", key);
  *out = it->get<double>();
  return Status::Ok();
}

bool ReservedFile(const std::string& file) {
  return file == kItemWeightsFile || file == kColdStartFile || file == kColdStartWeightsFile;
}

nlohmann::json ColdStartJson(const ColdStartModel& m) {
  const ColdStartOptions& o = m.options();
  return {{"method", std::string(ColdStartMethodName(o.method))},
          {"regularization", o.regularization},
          {"min_feature_count", o.min_feature_count},
          {"min_item_support", o.min_item_support},
          {"category_weight", o.category_weight},
          {"brand_weight", o.brand_weight},
          {"price_weight", o.price_weight},
          {"word_weight", o.word_weight},
          {"description_weight", o.description_weight},
          {"tag_weight", o.tag_weight},
          {"vocabulary", m.vocabulary()}};
}

Result<ColdStartModel> ColdStartFromParts(const nlohmann::json& j, RowMajorMatrixXf weights) {
  ColdStartOptions o;
  if (!j.is_object() || !j.contains("vocabulary") || !j["vocabulary"].is_array()) {
    return Status::InvalidArgument("cold_start.json has no vocabulary", "vocabulary");
  }
  auto number = [&](const char* key, double* out) { return OptionalNumber(j, key, out); };
  AFFINITY_RETURN_IF_ERROR(number("regularization", &o.regularization));
  AFFINITY_RETURN_IF_ERROR(number("category_weight", &o.category_weight));
  AFFINITY_RETURN_IF_ERROR(number("brand_weight", &o.brand_weight));
  AFFINITY_RETURN_IF_ERROR(number("price_weight", &o.price_weight));
  AFFINITY_RETURN_IF_ERROR(number("word_weight", &o.word_weight));
  AFFINITY_RETURN_IF_ERROR(number("description_weight", &o.description_weight));
  AFFINITY_RETURN_IF_ERROR(number("tag_weight", &o.tag_weight));
  std::vector<std::string> vocabulary;
  for (const auto& v : j["vocabulary"]) {
    if (!v.is_string()) return Status::InvalidArgument("must be strings", "vocabulary");
    vocabulary.push_back(v.get<std::string>());
  }
  return ColdStartModel::FromParts(o, std::move(vocabulary), std::move(weights));
}

nlohmann::json AudienceJson(const LogisticCalibration& c, double score_scale) {
  return {{"score_scale", score_scale},
          {"horizon_days", c.horizon_days},
          {"features", c.features},
          {"weights", c.weights},
          {"intercept", c.intercept},
          {"fitted_on", {{"launches", c.products}, {"pairs", c.pairs}, {"buyers", c.positives}}}};
}

Result<LogisticCalibration> AudienceFromJson(const nlohmann::json& j, double* score_scale) {
  LogisticCalibration c;
  auto number = [&](const char* key) -> Result<double> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) {
      return Status::InvalidArgument("must be a number", key);
    }
    return it->get<double>();
  };
  AFFINITY_ASSIGN_OR_RETURN(*score_scale, number("score_scale"));
  AFFINITY_ASSIGN_OR_RETURN(c.horizon_days, number("horizon_days"));
  AFFINITY_ASSIGN_OR_RETURN(c.intercept, number("intercept"));
  auto features = j.find("features");
  auto weights = j.find("weights");
  if (features == j.end() || weights == j.end() || !features->is_array() || !weights->is_array() ||
      features->size() != weights->size()) {
    return Status::InvalidArgument("features and weights must be arrays of one size", "weights");
  }
  for (size_t k = 0; k < features->size(); ++k) {
    if (!(*features)[k].is_string() || !(*weights)[k].is_number()) {
      return Status::InvalidArgument("bad feature or weight", "weights");
    }
    c.features.push_back((*features)[k].get<std::string>());
    c.weights.push_back((*weights)[k].get<double>());
  }
  if (!(std::isfinite(*score_scale) && *score_scale > 0)) {
    return Status::InvalidArgument("must be a positive number", "score_scale");
  }
  if (!(std::isfinite(c.horizon_days) && c.horizon_days > 0)) {
    return Status::InvalidArgument("must be a positive number", "horizon_days");
  }
  if (!std::isfinite(c.intercept) ||
      !std::all_of(c.weights.begin(), c.weights.end(), [](double w) { return std::isfinite(w); })) {
    return Status::InvalidArgument("must be finite", "weights");
  }
  if (auto it = j.find("fitted_on"); it != j.end() && it->is_object()) {
    c.products = it->value("launches", int64_t{0});
    c.pairs = it->value("pairs", int64_t{0});
    c.positives = it->value("buyers", int64_t{0});
  }
  return c;
}

namespace fs = std::filesystem;

constexpr char kMatrixMagic[8] = {'A', 'F', 'F', 'M', 'A', 'T', '0', '1'};
constexpr char kIdsMagic[8] = {'A', 'F', 'F', 'I', 'D', 'S', '0', '1'};

std::string VersionName(int64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "v%06lld", static_cast<long long>(v));
  return buf;
}

std::optional<int64_t> ParseVersionName(const std::string& name) {
  if (name.size() < 2 || name[0] != 'v') return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(name.data() + 1, name.data() + name.size(), v);
  if (ec != std::errc() || end != name.data() + name.size() || v < 0) return std::nullopt;
  return v;
}

Status Errno(const std::string& what, const std::string& path) {
  return Status::IOError(what + " " + path + ": " + std::strerror(errno));
}

// An exclusive lock on <root>/LOCK for the duration of a publish (released on destruction).
class PublishLock {
 public:
  // Waits up to `wait_seconds` for a holder to finish (polling every 100 ms).
  static Result<std::unique_ptr<PublishLock>> Acquire(const std::string& root,
                                                      double wait_seconds) {
    const std::string path = (fs::path(root) / "LOCK").string();
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot open", path);
    const auto give_up = std::chrono::steady_clock::now() +
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(wait_seconds));
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (std::chrono::steady_clock::now() >= give_up) {
        ::close(fd);
        return Status::FailedPrecondition("another publish or erasure is running in " + root);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::unique_ptr<PublishLock>(new PublishLock(fd));
  }
  ~PublishLock() { ::close(fd_); }  // closing releases the lock

 private:
  explicit PublishLock(int fd) : fd_(fd) {}
  int fd_;
};

// Writes `data` to `path` and fsyncs it.
Status WriteFileSynced(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = Errno("cannot write", path);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = Errno("cannot fsync", path);
    ::close(fd);
    return s;
  }
  if (::close(fd) != 0) return Errno("cannot close", path);
  return Status::Ok();
}

Status SyncDirectory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open directory", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("cannot fsync directory", path);
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
bool Get(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

std::string EncodeMatrix(const RowMajorMatrixXf& m) {
  std::string out(kMatrixMagic, sizeof(kMatrixMagic));
  Put<uint64_t>(&out, static_cast<uint64_t>(m.rows()));
  Put<uint64_t>(&out, static_cast<uint64_t>(m.cols()));
  out.append(reinterpret_cast<const char*>(m.data()),
             sizeof(float) * static_cast<size_t>(m.size()));
  return out;
}

Status DecodeMatrix(std::string_view in, const std::string& path, RowMajorMatrixXf* m) {
  uint64_t rows = 0, cols = 0;
  if (in.size() < sizeof(kMatrixMagic) || std::memcmp(in.data(), kMatrixMagic, 8) != 0) {
    return Status::Corruption(path + ": not a factor matrix file");
  }
  in.remove_prefix(8);
  if (!Get(&in, &rows) || !Get(&in, &cols) || in.size() != rows * cols * sizeof(float)) {
    return Status::Corruption(path + ": size does not match its header");
  }
  m->resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  std::memcpy(m->data(), in.data(), in.size());
  return Status::Ok();
}

std::string EncodeIds(const std::vector<std::string>& ids) {
  std::string out(kIdsMagic, sizeof(kIdsMagic));
  Put<uint64_t>(&out, ids.size());
  for (const auto& id : ids) {
    Put<uint32_t>(&out, static_cast<uint32_t>(id.size()));
    out += id;
  }
  return out;
}

Status DecodeIds(std::string_view in, const std::string& path, std::vector<std::string>* ids) {
  uint64_t count = 0;
  if (in.size() < 8 || std::memcmp(in.data(), kIdsMagic, 8) != 0) {
    return Status::Corruption(path + ": not an id map file");
  }
  in.remove_prefix(8);
  if (!Get(&in, &count)) return Status::Corruption(path + ": truncated");
  ids->clear();
  ids->reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    if (!Get(&in, &len) || in.size() < len) return Status::Corruption(path + ": truncated");
    ids->emplace_back(in.substr(0, len));
    in.remove_prefix(len);
  }
  if (!in.empty()) return Status::Corruption(path + ": trailing bytes");
  return Status::Ok();
}

uint32_t Crc32(const std::string& data) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

}  // namespace

Result<std::vector<int64_t>> ListSnapshots(const std::string& root) {
  std::vector<int64_t> versions;
  std::error_code ec;
  if (!fs::exists(root, ec)) return versions;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    if (auto v = ParseVersionName(entry.path().filename().string())) versions.push_back(*v);
  }
  if (ec) return Status::IOError("cannot list " + root + ": " + ec.message());
  std::sort(versions.begin(), versions.end());
  return versions;
}

namespace {

// Writes the files of `snapshot` as version `version` into the existing directory `dir`, its
// manifest last, and fsyncs them and the directory. The manifest is snapshot.manifest with the
// format, version, created_at, counts and file checksums set (its old "files" replaced).
Status WriteSnapshotDir(const std::string& dir, const Snapshot& snapshot, int64_t version) {
  nlohmann::json manifest = snapshot.manifest;
  manifest["files"] = nlohmann::json::object();
  manifest["format"] = 1;
  manifest["version"] = version;
  manifest["created_at"] =
      snapshot.created_at.empty()
          ? FormatTimestamp(std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count())
          : snapshot.created_at;
  manifest["factors"] = snapshot.item_factors.cols();
  manifest["customers"] = snapshot.user_factors.rows();
  manifest["products"] = snapshot.item_factors.rows();
  const std::pair<const char*, std::string> files[] = {
      {"user_factors.f32", EncodeMatrix(snapshot.user_factors)},
      {"item_factors.f32", EncodeMatrix(snapshot.item_factors)},
      {"customers.ids", EncodeIds(snapshot.customer_ids)},
      {"products.ids", EncodeIds(snapshot.product_ids)},
  };
  for (const auto& [file, data] : files) {
    AFFINITY_RETURN_IF_ERROR(WriteFileSynced((fs::path(dir) / file).string(), data));
    manifest["files"][file] = {{"bytes", data.size()}, {"crc32", Crc32(data)}};
  }
  if (snapshot.item_weights.size() > 0) {
    if (snapshot.item_weights.size() != snapshot.item_factors.rows()) {
      return Status::InvalidArgument("item_weights must have one entry per product",
                                     "item_weights");
    }
    const std::string data = EncodeMatrix(RowMajorMatrixXf(snapshot.item_weights));
    AFFINITY_RETURN_IF_ERROR(WriteFileSynced((fs::path(dir) / kItemWeightsFile).string(), data));
    manifest["files"][kItemWeightsFile] = {{"bytes", data.size()}, {"crc32", Crc32(data)}};
  }
  if (snapshot.cold_start) {
    if (!snapshot.cold_start->fitted() ||
        snapshot.cold_start->options().method != ColdStartMethod::kRidge) {
      return Status::InvalidArgument("only a fitted ridge cold-start model can be stored",
                                     "cold_start");
    }
    const std::pair<const char*, std::string> parts[] = {
        {kColdStartFile, ColdStartJson(*snapshot.cold_start)
                                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                             "\n"},
        {kColdStartWeightsFile, EncodeMatrix(snapshot.cold_start->weights())}};
    for (const auto& [file, data] : parts) {
      AFFINITY_RETURN_IF_ERROR(WriteFileSynced((fs::path(dir) / file).string(), data));
      manifest["files"][file] = {{"bytes", data.size()}, {"crc32", Crc32(data)}};
    }
  }
  if (snapshot.audience)
    manifest["audience"] = AudienceJson(*snapshot.audience, snapshot.score_scale);
  for (const auto& [file, data] : snapshot.extra_files) {
    if (file.empty() || file.find('/') != std::string::npos || file[0] == '.' ||
        manifest["files"].contains(file) || file == "manifest.json" || ReservedFile(file)) {
      return Status::InvalidArgument("bad extra snapshot file name '" + file + "'", "extra_files");
    }
    AFFINITY_RETURN_IF_ERROR(WriteFileSynced((fs::path(dir) / file).string(), data));
    manifest["files"][file] = {{"bytes", data.size()}, {"crc32", Crc32(data)}};
  }
  AFFINITY_RETURN_IF_ERROR(WriteFileSynced(
      (fs::path(dir) / "manifest.json").string(),
      manifest.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
  return SyncDirectory(dir);
}

}  // namespace

Result<int64_t> PublishSnapshot(const std::string& root, const Snapshot& snapshot,
                                double wait_seconds) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return Status::IOError("cannot create " + root + ": " + ec.message());
  // One publisher at a time: two overlapping runs would pick the same version and temporary names.
  AFFINITY_ASSIGN_OR_RETURN(auto lock, PublishLock::Acquire(root, wait_seconds));
  // Clean temporary directories left by an interrupted publish (safe under the lock).
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(entry.path(), ec);
  }
  AFFINITY_ASSIGN_OR_RETURN(std::vector<int64_t> versions, ListSnapshots(root));
  const int64_t version = versions.empty() ? 1 : versions.back() + 1;
  const std::string name = VersionName(version);
  const std::string tmp = (fs::path(root) / (".tmp-" + name)).string();
  fs::create_directories(tmp, ec);
  if (ec) return Status::IOError("cannot create " + tmp + ": " + ec.message());

  AFFINITY_RETURN_IF_ERROR(WriteSnapshotDir(tmp, snapshot, version));
  const std::string final_dir = (fs::path(root) / name).string();
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0) return Errno("cannot rename to", final_dir);
  AFFINITY_RETURN_IF_ERROR(SyncDirectory(root));
  // CURRENT is replaced by rename, so readers see the old or the new name, never a partial one.
  const std::string current_tmp = (fs::path(root) / ".tmp-CURRENT").string();
  AFFINITY_RETURN_IF_ERROR(WriteFileSynced(current_tmp, name + "\n"));
  const std::string current = (fs::path(root) / "CURRENT").string();
  if (::rename(current_tmp.c_str(), current.c_str()) != 0)
    return Errno("cannot rename to", current);
  AFFINITY_RETURN_IF_ERROR(SyncDirectory(root));
  return version;
}

namespace {

// Replaces the stored version snapshot.version under `root` with `snapshot`, the root's lock held
// by the caller: the new files go into .tmp-rewrite-vNNNNNN, which is then exchanged with the
// version's directory in one atomic rename, so that the version is whole, old or new, at every
// instant (a loader reading while it happens may find a file of the other side, which fails its
// checksum: Corruption, never a mixed model). The old files are removed after the exchange.
Status RewriteSnapshotLocked(const std::string& root, const Snapshot& snapshot) {
  const std::string name = VersionName(snapshot.version);
  const std::string final_dir = (fs::path(root) / name).string();
  const std::string tmp = (fs::path(root) / (".tmp-rewrite-" + name)).string();
  std::error_code ec;
  fs::create_directories(tmp, ec);
  if (ec) return Status::IOError("cannot create " + tmp + ": " + ec.message());
  AFFINITY_RETURN_IF_ERROR(WriteSnapshotDir(tmp, snapshot, snapshot.version));
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0) {
    return Errno("cannot exchange " + tmp + " with", final_dir);
  }
  AFFINITY_RETURN_IF_ERROR(SyncDirectory(root));
  fs::remove_all(tmp, ec);  // the old files now
  if (ec) return Status::IOError("cannot remove " + tmp + ": " + ec.message());
  return Status::Ok();
}

// Removes what interrupted erasures left (.tmp-rewrite-*: new files not exchanged yet, or old
// files not removed yet), the root's lock held by the caller.
Status RemoveRewriteLeftovers(const std::string& root) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.path().filename().string().rfind(".tmp-rewrite-", 0) != 0) continue;
    std::error_code removed;
    fs::remove_all(entry.path(), removed);
    if (removed) {
      return Status::IOError("cannot remove " + entry.path().string() + ": " + removed.message());
    }
  }
  if (ec) return Status::IOError("cannot list " + root + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> ForgetInPublishedSnapshot(
    const std::string& root, int64_t version, const std::unordered_set<std::string>& customers,
    double wait_seconds) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return Status::NotFound("no snapshot directory " + root);
  // Held from the load to the exchange: two erasures of one version cannot undo each other, and
  // a publish cannot clean the temporary directory of one in progress.
  AFFINITY_ASSIGN_OR_RETURN(auto lock, PublishLock::Acquire(root, wait_seconds));
  AFFINITY_RETURN_IF_ERROR(RemoveRewriteLeftovers(root));
  AFFINITY_ASSIGN_OR_RETURN(Snapshot snapshot, LoadSnapshot(root, version));
  std::vector<std::string> found = ForgetInSnapshot(&snapshot, customers);
  if (!found.empty()) AFFINITY_RETURN_IF_ERROR(RewriteSnapshotLocked(root, snapshot));
  return found;
}

std::vector<std::string> ForgetInSnapshot(Snapshot* snapshot,
                                          const std::unordered_set<std::string>& customers) {
  std::vector<std::string> found;
  if (customers.empty()) return found;
  for (size_t u = 0; u < snapshot->customer_ids.size(); ++u) {
    std::string& id = snapshot->customer_ids[u];
    if (id.empty() || !customers.count(id)) continue;
    found.push_back(id);
    id.clear();
    if (static_cast<Eigen::Index>(u) < snapshot->user_factors.rows()) {
      snapshot->user_factors.row(static_cast<Eigen::Index>(u)).setZero();
    }
  }
  // insights.jsonl: one JSON object per line, its "customer" the external id.
  if (auto it = snapshot->extra_files.find("insights.jsonl"); it != snapshot->extra_files.end()) {
    std::string kept;
    kept.reserve(it->second.size());
    std::string_view rest(it->second);
    while (!rest.empty()) {
      const size_t end = rest.find('\n');
      const std::string_view line =
          rest.substr(0, end == std::string_view::npos ? rest.size() : end + 1);
      rest.remove_prefix(line.size());
      bool drop = false;
      if (line.find("\"customer\"") != std::string_view::npos) {
        auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (row.is_object()) {
          auto c = row.find("customer");
          if (c != row.end() && c->is_string() && customers.count(c->get<std::string>())) {
            drop = true;
            const std::string& id = c->get_ref<const std::string&>();
            if (std::find(found.begin(), found.end(), id) == found.end()) found.push_back(id);
          }
        }
      }
      if (!drop) kept.append(line);
    }
    it->second = std::move(kept);
  }
  if (!found.empty()) {
    const int64_t before = snapshot->manifest.value("forgotten_customers", int64_t{0});
    snapshot->manifest["forgotten_customers"] = before + static_cast<int64_t>(found.size());
  }
  return found;
}

Result<int64_t> ForgetGoneCustomers(const Store& store, Snapshot* snapshot) {
  std::unordered_set<std::string> gone;
  for (size_t u = 0; u < snapshot->customer_ids.size(); ++u) {
    const std::string& id = snapshot->customer_ids[u];
    if (id.empty()) continue;
    auto stored = store.CustomerExternalId(CustomerId{static_cast<uint32_t>(u)});
    if (stored.ok() && *stored == id) continue;
    if (!stored.ok() && stored.status().code() != StatusCode::kNotFound) return stored.status();
    gone.insert(id);
  }
  return static_cast<int64_t>(ForgetInSnapshot(snapshot, gone).size());
}

Result<int64_t> CurrentSnapshotVersion(const std::string& root) {
  auto current = ReadFile((fs::path(root) / "CURRENT").string());
  if (!current.ok()) return Status::NotFound("no current snapshot in " + root);
  std::string name = *current;
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  auto version = ParseVersionName(name);
  if (!version) return Status::Corruption(root + "/CURRENT names no version");
  return *version;
}

nlohmann::json IalsOptionsJson(const IalsOptions& o) {
  static const char* kConfidence[] = {"binary", "log", "linear"};
  return {{"factors", o.factors},
          {"iterations", o.iterations},
          {"unobserved_weight", o.unobserved_weight},
          {"popularity_exponent", o.unobserved_popularity_exponent},
          {"regularization", o.regularization},
          {"reg_exponent", o.regularization_exponent},
          {"alpha", o.confidence_alpha},
          {"confidence", kConfidence[static_cast<int>(o.confidence)]},
          {"solver", o.solver == IalsSolver::kCholesky ? "cholesky" : "cg"},
          {"cg_steps", o.cg_steps},
          {"init_stddev", o.init_stddev},
          {"seed", o.seed},
          {"threads", o.num_threads}};
}

Result<IalsOptions> IalsOptionsFromJson(const nlohmann::json& j) {
  IalsOptions o;
  if (!j.is_object()) return Status::InvalidArgument("model options are not an object", "options");
  auto number = [&](const char* key, double* out) { return OptionalNumber(j, key, out); };
  auto integer = [&](const char* key, auto* out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return Status::Ok();
    if (!it->is_number_integer()) return Status::InvalidArgument("must be an integer", key);
    *out = it->get<std::remove_pointer_t<decltype(out)>>();
    return Status::Ok();
  };
  AFFINITY_RETURN_IF_ERROR(integer("factors", &o.factors));
  AFFINITY_RETURN_IF_ERROR(integer("iterations", &o.iterations));
  AFFINITY_RETURN_IF_ERROR(number("unobserved_weight", &o.unobserved_weight));
  AFFINITY_RETURN_IF_ERROR(number("popularity_exponent", &o.unobserved_popularity_exponent));
  AFFINITY_RETURN_IF_ERROR(number("regularization", &o.regularization));
  AFFINITY_RETURN_IF_ERROR(number("reg_exponent", &o.regularization_exponent));
  AFFINITY_RETURN_IF_ERROR(number("alpha", &o.confidence_alpha));
  AFFINITY_RETURN_IF_ERROR(integer("cg_steps", &o.cg_steps));
  AFFINITY_RETURN_IF_ERROR(number("init_stddev", &o.init_stddev));
  AFFINITY_RETURN_IF_ERROR(integer("seed", &o.seed));
  AFFINITY_RETURN_IF_ERROR(integer("threads", &o.num_threads));
  if (auto it = j.find("confidence"); it != j.end()) {
    const std::string c = it->is_string() ? it->get<std::string>() : "";
    if (c == "binary") {
      o.confidence = ConfidenceTransform::kBinary;
    } else if (c == "log") {
      o.confidence = ConfidenceTransform::kLog;
    } else if (c == "linear") {
      o.confidence = ConfidenceTransform::kLinear;
    } else {
      return Status::InvalidArgument("must be binary, log or linear", "confidence");
    }
  }
  if (auto it = j.find("solver"); it != j.end()) {
    const std::string c = it->is_string() ? it->get<std::string>() : "";
    if (c != "cg" && c != "cholesky")
      return Status::InvalidArgument("must be cg or cholesky", "solver");
    o.solver = c == "cg" ? IalsSolver::kConjugateGradient : IalsSolver::kCholesky;
  }
  AFFINITY_RETURN_IF_ERROR(o.Validate());
  return o;
}

Result<Snapshot> LoadSnapshot(const std::string& root, std::optional<int64_t> version) {
  std::string name;
  if (version) {
    name = VersionName(*version);
  } else {
    AFFINITY_ASSIGN_OR_RETURN(int64_t current, CurrentSnapshotVersion(root));
    name = VersionName(current);
  }
  const fs::path dir = fs::path(root) / name;
  if (!fs::exists(dir)) return Status::NotFound("no snapshot " + dir.string());
  Snapshot s;
  s.version = *ParseVersionName(name);
  AFFINITY_ASSIGN_OR_RETURN(std::string manifest_text, ReadFile((dir / "manifest.json").string()));
  s.manifest = nlohmann::json::parse(manifest_text, nullptr, /*allow_exceptions=*/false);
  if (s.manifest.is_discarded() || !s.manifest.is_object() || !s.manifest.contains("files") ||
      !s.manifest["files"].is_object()) {
    return Status::Corruption(dir.string() + "/manifest.json is not a snapshot manifest");
  }
  const nlohmann::json& files = s.manifest["files"];
  // True if `data` matches the manifest's entry for `file` (an entry of the wrong shape does not).
  auto matches = [&](const std::string& file, const std::string& data) {
    auto it = files.find(file);
    if (it == files.end() || !it->is_object()) return false;
    auto crc = it->find("crc32"), bytes = it->find("bytes");
    return crc != it->end() && bytes != it->end() && crc->is_number_unsigned() &&
           bytes->is_number_unsigned() && crc->get<uint64_t>() == Crc32(data) &&
           bytes->get<uint64_t>() == data.size();
  };
  if (auto it = s.manifest.find("created_at"); it != s.manifest.end() && it->is_string()) {
    s.created_at = it->get<std::string>();
  }
  for (const char* file :
       {"user_factors.f32", "item_factors.f32", "customers.ids", "products.ids"}) {
    const std::string path = (dir / file).string();
    AFFINITY_ASSIGN_OR_RETURN(std::string data, ReadFile(path));
    if (!matches(file, data)) {
      return Status::Corruption(path + ": checksum does not match the manifest");
    }
    std::string_view view(data);
    if (std::string_view(file) == "user_factors.f32") {
      AFFINITY_RETURN_IF_ERROR(DecodeMatrix(view, path, &s.user_factors));
    } else if (std::string_view(file) == "item_factors.f32") {
      AFFINITY_RETURN_IF_ERROR(DecodeMatrix(view, path, &s.item_factors));
    } else if (std::string_view(file) == "customers.ids") {
      AFFINITY_RETURN_IF_ERROR(DecodeIds(view, path, &s.customer_ids));
    } else {
      AFFINITY_RETURN_IF_ERROR(DecodeIds(view, path, &s.product_ids));
    }
  }
  if (s.user_factors.cols() != s.item_factors.cols() ||
      static_cast<size_t>(s.user_factors.rows()) != s.customer_ids.size() ||
      static_cast<size_t>(s.item_factors.rows()) != s.product_ids.size()) {
    return Status::Corruption(dir.string() + ": factor and id files disagree in size");
  }
  std::map<std::string, std::string> cold_start_parts;
  for (const auto& [file, info] : files.items()) {
    if (file == "user_factors.f32" || file == "item_factors.f32" || file == "customers.ids" ||
        file == "products.ids") {
      continue;  // checked and decoded above
    }
    if (file.empty() || file.find('/') != std::string::npos || file[0] == '.') {
      return Status::Corruption(dir.string() + "/manifest.json names a bad file '" + file + "'");
    }
    const std::string path = (dir / file).string();
    AFFINITY_ASSIGN_OR_RETURN(std::string data, ReadFile(path));
    if (!matches(file, data)) {
      return Status::Corruption(path + ": checksum does not match the manifest");
    }
    if (file == kItemWeightsFile) {
      RowMajorMatrixXf weights;
      std::string_view view(data);
      AFFINITY_RETURN_IF_ERROR(DecodeMatrix(view, path, &weights));
      if (weights.cols() != 1 || weights.rows() != s.item_factors.rows()) {
        return Status::Corruption(path + ": not one weight per product");
      }
      s.item_weights = weights.col(0);
      continue;
    }
    if (file == kColdStartFile || file == kColdStartWeightsFile) {
      cold_start_parts[file] = std::move(data);
      continue;
    }
    s.extra_files[file] = std::move(data);
  }
  if (cold_start_parts.size() == 2) {
    const std::string path = (dir / kColdStartFile).string();
    RowMajorMatrixXf weights;
    std::string_view view(cold_start_parts[kColdStartWeightsFile]);
    AFFINITY_RETURN_IF_ERROR(DecodeMatrix(view, path, &weights));
    auto j = nlohmann::json::parse(cold_start_parts[kColdStartFile], nullptr, false);
    auto model = ColdStartFromParts(j, std::move(weights));
    if (!model.ok() || model->factors() != s.item_factors.cols()) {
      return Status::Corruption(path + ": not a cold-start model for these factors" +
                                (model.ok() ? "" : " (" + model.status().message() + ")"));
    }
    s.cold_start = std::move(*model);
  } else if (!cold_start_parts.empty()) {
    return Status::Corruption(dir.string() + ": half a cold-start model");
  }
  if (auto it = s.manifest.find("audience"); it != s.manifest.end() && !it->is_null()) {
    auto audience = AudienceFromJson(*it, &s.score_scale);
    if (!audience.ok()) {
      return Status::Corruption(dir.string() + "/manifest.json: bad audience model (" +
                                audience.status().message() + ")");
    }
    s.audience = std::move(*audience);
  }
  return s;
}

}  // namespace affinity
