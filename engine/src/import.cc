#include "affinity/import.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <optional>
#include <set>
#include <unordered_map>

#include "affinity/time_util.h"
#include "row_source.h"

namespace affinity {
namespace {

using Clock = std::chrono::steady_clock;

const std::map<ImportKind, std::vector<std::string>>& KindFields() {
  static const auto* fields = new std::map<ImportKind, std::vector<std::string>>{
      {ImportKind::kPurchases,
       {"customer", "product", "time", "quantity", "price", "event_id", "invoice", "line",
        "channel", "type"}},
      {ImportKind::kProducts,
       {"product", "title", "description", "category", "brand", "price", "tags", "created_at",
        "available"}},
      {ImportKind::kCustomers,
       {"customer", "email", "name", "country", "opted_out", "interests", "created_at"}},
  };
  return *fields;
}

std::string_view KindName(ImportKind kind) {
  switch (kind) {
    case ImportKind::kCustomers:
      return "customers";
    case ImportKind::kProducts:
      return "products";
    case ImportKind::kPurchases:
      return "purchases";
  }
  return "?";
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A field-level problem with a row; becomes a RowError.
struct RowProblem {
  std::string reason;
};

// Row-level parse helpers: each returns the value or sets *problem.
std::optional<std::string> ParseId(std::optional<std::string_view> raw, const char* field,
                                   std::optional<RowProblem>* problem) {
  std::string_view v = raw ? Trim(*raw) : std::string_view();
  if (std::string why = ExternalIdProblem(v); !why.empty()) {
    *problem = RowProblem{std::string(field) + " " + why};
    return std::nullopt;
  }
  return std::string(v);
}

std::optional<double> ParseNumber(std::string_view raw, const char* field,
                                  std::optional<RowProblem>* problem) {
  std::string_view v = Trim(raw);
  double out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || !std::isfinite(out)) {
    *problem = RowProblem{std::string(field) + " '" + std::string(raw) + "' is not a number"};
    return std::nullopt;
  }
  return out;
}

std::optional<int64_t> ParseInteger(std::string_view raw, const char* field,
                                    std::optional<RowProblem>* problem) {
  std::string_view v = Trim(raw);
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) {
    *problem = RowProblem{std::string(field) + " '" + std::string(raw) + "' is not an integer"};
    return std::nullopt;
  }
  return out;
}

std::optional<UnixSeconds> ParseTime(std::string_view raw, const char* field,
                                     std::optional<RowProblem>* problem) {
  auto t = ParseTimestamp(raw);
  if (!t.ok()) {
    *problem = RowProblem{std::string(field) + ": " + t.status().message()};
    return std::nullopt;
  }
  return *t;
}

std::optional<bool> ParseBool(std::string_view raw, const char* field,
                              std::optional<RowProblem>* problem) {
  std::string v(Trim(raw));
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v == "true" || v == "1" || v == "yes" || v == "y") return true;
  if (v == "false" || v == "0" || v == "no" || v == "n") return false;
  *problem = RowProblem{std::string(field) + " '" + std::string(raw) + "' is not a boolean"};
  return std::nullopt;
}

std::optional<std::string> ParseText(std::string_view raw, const char* field,
                                     std::optional<RowProblem>* problem) {
  std::string_view v = Trim(raw);
  if (HasControlChars(v)) {
    *problem = RowProblem{std::string(field) + " contains control characters"};
    return std::nullopt;
  }
  if (!IsValidUtf8(v)) {
    *problem = RowProblem{std::string(field) + " is not valid UTF-8"};
    return std::nullopt;
  }
  return std::string(v);
}

std::vector<std::string> SplitList(std::string_view raw) {
  std::vector<std::string> out;
  while (true) {
    size_t semi = raw.find(';');
    std::string_view item = Trim(raw.substr(0, semi));
    if (!item.empty()) out.emplace_back(item);
    if (semi == std::string_view::npos) break;
    raw.remove_prefix(semi + 1);
  }
  return out;
}

// A plausible e-mail address: one '@', something on both sides, a dot in the domain, no spaces.
bool PlausibleEmail(std::string_view e) {
  size_t at = e.find('@');
  if (at == std::string_view::npos || at == 0 || e.find('@', at + 1) != std::string_view::npos) {
    return false;
  }
  std::string_view domain = e.substr(at + 1);
  if (domain.find('.') == std::string_view::npos || domain.front() == '.' || domain.back() == '.') {
    return false;
  }
  for (unsigned char c : e) {
    if (c <= 0x20 || c == 0x7f || c == ',' || c == '<' || c == '>' || c == '"') return false;
  }
  return true;
}

// Buffers validated rows and writes them in batches.
class BatchWriter {
 public:
  BatchWriter(Store& store, ImportReport& report, const ImportOptions& options)
      : store_(store), report_(report), options_(options) {}

  Status AddEvent(EventInput e) {
    events_.push_back(std::move(e));
    return MaybeFlush();
  }
  Status AddCustomer(std::string id, CustomerProfile p) {
    customers_.emplace_back(std::move(id), std::move(p));
    return MaybeFlush();
  }
  Status AddProduct(std::string id, ProductAttributes a) {
    products_.emplace_back(std::move(id), std::move(a));
    return MaybeFlush();
  }

  Status Flush() {
    if (!options_.dry_run) {
      // Products and customers first, so that events of new ids find their records.
      if (!products_.empty()) {
        AFFINITY_ASSIGN_OR_RETURN(int64_t created, store_.UpsertProducts(products_));
        report_.new_products += created;
      }
      if (!customers_.empty()) {
        AFFINITY_ASSIGN_OR_RETURN(int64_t created,
                                  store_.UpsertCustomers(customers_, &report_.forgotten_profiles));
        report_.new_customers += created;
      }
      if (!events_.empty()) {
        AFFINITY_ASSIGN_OR_RETURN(AppendResult r, store_.AppendEvents(events_));
        report_.events_written += r.written;
        report_.duplicate_events += r.duplicates;
        report_.forgotten_events += r.forgotten;
        report_.new_customers += r.new_customers;
        report_.new_products += r.new_products;
        report_.bytes_written += r.bytes;
      }
    }
    events_.clear();
    customers_.clear();
    products_.clear();
    return Status::Ok();
  }

 private:
  Status MaybeFlush() {
    auto n = static_cast<size_t>(options_.batch_size);
    if (events_.size() >= n || customers_.size() >= n || products_.size() >= n) return Flush();
    return Status::Ok();
  }

  Store& store_;
  ImportReport& report_;
  const ImportOptions& options_;
  std::vector<EventInput> events_;
  std::vector<std::pair<std::string, CustomerProfile>> customers_;
  std::vector<std::pair<std::string, ProductAttributes>> products_;
};

// Handles one file's loop: reading, progress, rejects; `handler` classifies each row.
class FileRun {
 public:
  FileRun(Store& store, RowSource& source, const std::string& path, std::string kind,
          const ImportOptions& options)
      : source_(source), options_(options), writer_(store, report_, options) {
    report_.file = path;
    report_.kind = std::move(kind);
  }

  RowSource& source() { return source_; }
  BatchWriter& writer() { return writer_; }
  ImportReport& report() { return report_; }

  // Runs `handler(problem)` for every row; the handler returns a Status (fatal errors only) and
  // either accepts, drops (Drop) or reports a row problem via *problem.
  template <typename Handler>
  Result<ImportReport> Run(Handler&& handler) {
    const auto start = Clock::now();
    auto last_report = start;
    while (true) {
      AFFINITY_ASSIGN_OR_RETURN(bool got, source_.Next());
      if (!got) break;
      ++report_.rows;
      std::optional<RowProblem> problem;
      if (!source_.record_error().empty()) {
        problem = RowProblem{source_.record_error()};
      } else {
        AFFINITY_RETURN_IF_ERROR(handler(&problem));
      }
      if (problem) AFFINITY_RETURN_IF_ERROR(Reject(problem->reason));
      if ((report_.rows & 4095) == 0 && options_.on_progress) {
        auto now = Clock::now();
        if (now - last_report >= std::chrono::seconds(1)) {
          last_report = now;
          options_.on_progress({report_.file, report_.rows, source_.progress(),
                                std::chrono::duration<double>(now - start).count(), false});
        }
      }
    }
    AFFINITY_RETURN_IF_ERROR(writer_.Flush());
    report_.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (options_.on_progress) {
      options_.on_progress({report_.file, report_.rows, 1.0, report_.seconds, true});
    }
    return report_;
  }

  void Accept() { ++report_.accepted; }
  void Drop(const std::string& reason) { ++report_.dropped[reason]; }

 private:
  Status Reject(const std::string& reason) {
    RowError error{report_.file, source_.line(), reason};
    if (options_.strict) return Status::InvalidArgument(error.ToString());
    ++report_.rejected;
    if (report_.errors.size() < static_cast<size_t>(options_.max_reported_errors)) {
      report_.errors.push_back(std::move(error));
    }
    return Status::Ok();
  }

  RowSource& source_;
  const ImportOptions& options_;
  ImportReport report_;
  BatchWriter writer_;
};

// Column indexes of a generic import, by field name.
class FieldMap {
 public:
  static Result<FieldMap> Build(RowSource& source, const std::string& path,
                                const ImportOptions& options,
                                const std::vector<std::string>& required) {
    FieldMap map;
    for (const auto& field : KindFields().at(options.kind)) {
      auto mapped = options.columns.find(field);
      const std::string& column = mapped != options.columns.end() ? mapped->second : field;
      std::optional<int> index = source.Resolve(column);
      bool is_required = std::find(required.begin(), required.end(), field) != required.end();
      if (!index && (is_required || mapped != options.columns.end())) {
        return Status::InvalidArgument(path + ": column '" + column + "' for field '" + field +
                                           "' is not in the header (map it with --columns " +
                                           field + "=COLUMN)",
                                       field);
      }
      if (index) map.index_[field] = *index;
    }
    return map;
  }

  std::optional<std::string_view> Get(RowSource& source, const std::string& field) const {
    auto it = index_.find(field);
    if (it == index_.end()) return std::nullopt;
    auto v = source.Field(it->second);
    if (v && Trim(*v).empty()) return std::nullopt;
    return v;
  }

 private:
  std::map<std::string, int> index_;
};

Result<ImportReport> ImportGenericOnce(Store& store, const std::string& path,
                                       const ImportOptions& options) {
  AFFINITY_ASSIGN_OR_RETURN(auto source, OpenRowSource(path, FileFormat::kAuto, options.delimiter));
  FileRun run(store, *source, path, std::string(KindName(options.kind)), options);
  BatchWriter& writer = run.writer();

  switch (options.kind) {
    case ImportKind::kPurchases: {
      AFFINITY_ASSIGN_OR_RETURN(
          FieldMap f, FieldMap::Build(*source, path, options, {"customer", "product", "time"}));
      std::unordered_map<std::string, int64_t> invoice_lines;
      return run.Run([&](std::optional<RowProblem>* problem) -> Status {
        RowSource& s = *source;
        std::optional<std::string> invoice;
        if (auto raw = f.Get(s, "invoice")) {
          invoice = ParseId(raw, "invoice", problem);
          if (invoice) ++invoice_lines[*invoice];
        }
        EventInput e;
        auto customer = ParseId(f.Get(s, "customer"), "customer", problem);
        auto product = ParseId(f.Get(s, "product"), "product", problem);
        auto time_raw = f.Get(s, "time");
        if (!time_raw) *problem = RowProblem{"time is empty"};
        if (*problem) return Status::Ok();
        auto time = ParseTime(*time_raw, "time", problem);
        if (auto q = f.Get(s, "quantity")) {
          auto v = ParseNumber(*q, "quantity", problem);
          if (v && *v <= 0) *problem = RowProblem{"quantity must be > 0"};
          if (v) e.quantity = *v;
        }
        if (auto p = f.Get(s, "price")) {
          auto v = ParseNumber(*p, "price", problem);
          if (v && *v < 0) *problem = RowProblem{"price must be >= 0"};
          if (v) e.unit_price = *v;
        }
        if (auto t = f.Get(s, "type")) {
          auto type = ParseEventType(Trim(*t));
          if (!type.ok())
            *problem = RowProblem{type.status().message()};
          else
            e.type = *type;
        }
        if (auto c = f.Get(s, "channel")) {
          auto channel = ParseText(*c, "channel", problem);
          if (channel) e.channel = *channel;
        }
        if (*problem) return Status::Ok();
        e.customer = std::move(*customer);
        e.product = std::move(*product);
        e.time = *time;
        if (auto id = f.Get(s, "event_id")) {
          auto event_id = ParseId(id, "event_id", problem);
          if (!event_id) return Status::Ok();
          e.event_id = std::move(*event_id);
        } else if (invoice) {
          std::string line;
          if (auto l = f.Get(s, "line")) {
            auto parsed = ParseId(l, "line", problem);
            if (!parsed) return Status::Ok();
            line = *parsed;
          } else {
            line = std::to_string(invoice_lines[*invoice]);
          }
          e.event_id = "inv:" + *invoice + ":" + line;
        } else {
          e.event_id = "row:" + e.customer + "|" + e.product + "|" + std::to_string(e.time) + "|" +
                       std::string(EventTypeName(e.type));
        }
        run.Accept();
        return writer.AddEvent(std::move(e));
      });
    }
    case ImportKind::kProducts: {
      AFFINITY_ASSIGN_OR_RETURN(FieldMap f, FieldMap::Build(*source, path, options, {"product"}));
      return run.Run([&](std::optional<RowProblem>* problem) -> Status {
        RowSource& s = *source;
        auto id = ParseId(f.Get(s, "product"), "product", problem);
        ProductAttributes a;
        if (auto v = f.Get(s, "title")) a.title = ParseText(*v, "title", problem);
        if (auto v = f.Get(s, "description")) {
          // Line breaks and tabs are kept (a quoted CSV field may hold them); other control
          // characters are refused.
          // A longer one (a catalog export's HTML, say) is cut at a character boundary rather
          // than costing the row its other fields.
          if (ParseText(LineBreaksAsSpaces(*v), "description", problem)) {
            std::string_view text = Trim(*v);
            if (text.size() > kMaxDescriptionBytes) {
              size_t end = kMaxDescriptionBytes;
              while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) --end;
              text = Trim(text.substr(0, end));
            }
            a.description = std::string(text);
          }
        }
        if (auto v = f.Get(s, "category")) {
          if (ParseText(*v, "category", problem)) a.category = SplitCategory(*v);
        }
        if (auto v = f.Get(s, "brand")) a.brand = ParseText(*v, "brand", problem);
        if (auto v = f.Get(s, "price")) {
          a.price = ParseNumber(*v, "price", problem);
          if (a.price && *a.price < 0) *problem = RowProblem{"price must be >= 0"};
        }
        if (auto v = f.Get(s, "tags")) {
          if (ParseText(*v, "tags", problem)) a.tags = SplitList(*v);
        }
        if (auto v = f.Get(s, "created_at")) a.created_at = ParseTime(*v, "created_at", problem);
        if (auto v = f.Get(s, "available")) a.available = ParseBool(*v, "available", problem);
        if (*problem) return Status::Ok();
        run.Accept();
        return writer.AddProduct(std::move(*id), std::move(a));
      });
    }
    case ImportKind::kCustomers: {
      AFFINITY_ASSIGN_OR_RETURN(FieldMap f, FieldMap::Build(*source, path, options, {"customer"}));
      return run.Run([&](std::optional<RowProblem>* problem) -> Status {
        RowSource& s = *source;
        auto id = ParseId(f.Get(s, "customer"), "customer", problem);
        CustomerProfile p;
        if (auto v = f.Get(s, "email")) {
          std::string_view email = Trim(*v);
          if (!PlausibleEmail(email)) {
            *problem = RowProblem{"email '" + std::string(*v) + "' is not a valid address"};
          } else {
            p.email = std::string(email);
          }
        }
        if (auto v = f.Get(s, "name")) p.name = ParseText(*v, "name", problem);
        if (auto v = f.Get(s, "country")) p.country = ParseText(*v, "country", problem);
        if (auto v = f.Get(s, "opted_out")) p.opted_out = ParseBool(*v, "opted_out", problem);
        if (auto v = f.Get(s, "interests")) {
          if (ParseText(*v, "interests", problem)) {
            p.interests.emplace();
            for (const auto& item : SplitList(*v)) {
              p.interests->push_back(JoinCategory(SplitCategory(item)));
            }
          }
        }
        if (auto v = f.Get(s, "created_at")) p.created_at = ParseTime(*v, "created_at", problem);
        if (*problem) return Status::Ok();
        run.Accept();
        return writer.AddCustomer(std::move(*id), std::move(p));
      });
    }
  }
  return Status::Internal("unknown import kind");
}

// ---- Online Retail (UCI) ----

// Per-product aggregate over the rows that register the product (docs/import.md).
struct RetailProduct {
  std::map<std::string, std::pair<int64_t, int64_t>> descriptions;  // text -> (count, first row)
  std::optional<UnixSeconds> first_sale, last_sale, first_any, last_any;
  double last_sale_price = 0, last_any_price = 0;
};

bool IsRetailProductCode(std::string_view code) {
  if (code.starts_with("DCGS")) return true;
  if (code.size() < 5) return false;
  for (size_t i = 0; i < 5; ++i) {
    if (code[i] < '0' || code[i] > '9') return false;
  }
  return true;
}

Result<ImportReport> ImportOnlineRetailOnce(Store& store, const std::string& path,
                                            const ImportOptions& options) {
  AFFINITY_ASSIGN_OR_RETURN(auto source, OpenRowSource(path, FileFormat::kCsv, ','));
  std::vector<int> col;
  for (const char* name : {"InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
                           "UnitPrice", "CustomerID", "Country"}) {
    auto index = source->Resolve(name);
    if (!index) {
      return Status::InvalidArgument(path + ": not an Online Retail file (no column '" +
                                     std::string(name) + "')");
    }
    col.push_back(*index);
  }
  FileRun run(store, *source, path, "online-retail", options);
  std::unordered_map<std::string, int64_t> invoice_lines;
  std::unordered_map<std::string, RetailProduct> products;
  int64_t row_index = 0;

  AFFINITY_ASSIGN_OR_RETURN(
      ImportReport report, run.Run([&](std::optional<RowProblem>* problem) -> Status {
        RowSource& s = *source;
        auto field = [&](int i) { return Trim(s.Field(col[i]).value_or("")); };
        ++row_index;
        std::string_view invoice = field(0);
        int64_t line = invoice.empty() ? 0 : ++invoice_lines[std::string(invoice)];
        if (invoice.empty()) *problem = RowProblem{"InvoiceNo is empty"};
        auto code = ParseId(field(1), "StockCode", problem);
        auto quantity = ParseInteger(field(3), "Quantity", problem);
        auto time = ParseTime(field(4), "InvoiceDate", problem);
        auto price = ParseNumber(field(5), "UnitPrice", problem);
        std::string_view customer_raw = field(6);
        std::string customer(customer_raw.substr(0, customer_raw.find('.')));
        if (!customer_raw.empty()) {
          std::string_view frac = customer_raw.substr(customer.size());
          bool ok = !customer.empty() &&
                    customer.find_first_not_of("0123456789") == std::string::npos &&
                    (frac.empty() || frac.find_first_not_of("0", 1) == std::string_view::npos);
          if (!ok)
            *problem = RowProblem{"CustomerID '" + std::string(customer_raw) + "' is not a number"};
        }
        if (*problem) return Status::Ok();

        if (!IsRetailProductCode(*code)) {
          run.Drop("non_product");
          return Status::Ok();
        }
        bool cancellation = invoice.front() == 'C';
        if (*price <= 0 || (!cancellation && *quantity <= 0) || (cancellation && *quantity >= 0)) {
          run.Drop("adjustment");
          return Status::Ok();
        }
        RetailProduct& p = products[*code];
        std::string_view description = field(2);
        if (!description.empty()) {
          auto [it, inserted] = p.descriptions.try_emplace(std::string(description), 0, row_index);
          ++it->second.first;
        }
        if (!p.first_any || *time < *p.first_any) p.first_any = *time;
        if (!p.last_any || *time >= *p.last_any) {
          p.last_any = *time;
          p.last_any_price = *price;
        }
        if (!cancellation) {
          if (!p.first_sale || *time < *p.first_sale) p.first_sale = *time;
          if (!p.last_sale || *time >= *p.last_sale) {
            p.last_sale = *time;
            p.last_sale_price = *price;
          }
        }
        if (customer.empty()) {
          run.Drop("anonymous");
          return Status::Ok();
        }
        run.Accept();
        EventInput e;
        e.customer = customer;
        e.product = *code;
        e.type = cancellation ? EventType::kReturn : EventType::kPurchase;
        e.time = *time;
        e.quantity = static_cast<double>(std::abs(*quantity));
        e.unit_price = *price;
        e.channel = "web";
        e.event_id = "OR:" + std::string(invoice) + ":" + std::to_string(line);
        CustomerProfile profile;
        profile.country = std::string(field(7));
        AFFINITY_RETURN_IF_ERROR(run.writer().AddCustomer(customer, std::move(profile)));
        return run.writer().AddEvent(std::move(e));
      }));

  // Product records: title = most frequent description (ties: first seen), price = latest sale,
  // created_at = first sale (or first row if the product was only ever returned).
  BatchWriter writer(store, report, options);
  for (auto& [code, p] : products) {
    ProductAttributes a;
    const std::pair<const std::string, std::pair<int64_t, int64_t>>* best = nullptr;
    for (const auto& d : p.descriptions) {
      if (!best || d.second.first > best->second.first ||
          (d.second.first == best->second.first && d.second.second < best->second.second)) {
        best = &d;
      }
    }
    if (best) a.title = best->first;
    a.price = p.first_sale ? p.last_sale_price : p.last_any_price;
    a.created_at = p.first_sale ? p.first_sale : p.first_any;
    AFFINITY_RETURN_IF_ERROR(writer.AddProduct(code, std::move(a)));
  }
  AFFINITY_RETURN_IF_ERROR(writer.Flush());
  return report;
}

// ---- The Complete Journey (dunnhumby) ----

bool IsNa(std::string_view v) { return v.empty() || v == "NA"; }

Result<ImportReport> ImportCompleteJourneyOnce(Store& store, const std::string& path,
                                               const ImportOptions& options) {
  AFFINITY_ASSIGN_OR_RETURN(auto source, OpenRowSource(path, FileFormat::kCsv, ','));
  auto resolve_all =
      [&](std::initializer_list<const char*> names) -> std::optional<std::vector<int>> {
    std::vector<int> out;
    for (const char* name : names) {
      auto index = source->Resolve(name);
      if (!index) return std::nullopt;
      out.push_back(*index);
    }
    return out;
  };
  auto field = [&](int index) { return Trim(source->Field(index).value_or("")); };

  if (auto col = resolve_all({"household_id", "basket_id", "product_id", "quantity", "sales_value",
                              "transaction_timestamp"})) {
    FileRun run(store, *source, path, "completejourney-transactions", options);
    return run.Run([&, col = *col](std::optional<RowProblem>* problem) -> Status {
      auto customer = ParseId(field(col[0]), "household_id", problem);
      auto basket = ParseId(field(col[1]), "basket_id", problem);
      auto product = ParseId(field(col[2]), "product_id", problem);
      auto quantity = ParseNumber(field(col[3]), "quantity", problem);
      auto sales = ParseNumber(field(col[4]), "sales_value", problem);
      auto time = ParseTime(field(col[5]), "transaction_timestamp", problem);
      if (*problem) return Status::Ok();
      if (*sales < 0) {
        *problem = RowProblem{"sales_value is negative"};
        return Status::Ok();
      }
      if (*quantity <= 0) {
        run.Drop("zero_quantity");
        return Status::Ok();
      }
      run.Accept();
      EventInput e;
      e.event_id = "CJ:" + *basket + ":" + *product;
      e.customer = std::move(*customer);
      e.product = std::move(*product);
      e.time = *time;
      e.quantity = *quantity;
      e.unit_price = *sales / *quantity;
      e.channel = "store";
      return run.writer().AddEvent(std::move(e));
    });
  }
  if (auto col = resolve_all({"product_id", "manufacturer_id", "department", "brand",
                              "product_category", "product_type", "package_size"})) {
    FileRun run(store, *source, path, "completejourney-products", options);
    return run.Run([&, col = *col](std::optional<RowProblem>* problem) -> Status {
      auto id = ParseId(field(col[0]), "product_id", problem);
      if (*problem) return Status::Ok();
      ProductAttributes a;
      a.category.emplace();
      for (int level : {col[2], col[4], col[5]}) {
        std::string_view v = field(level);
        if (IsNa(v)) break;
        // A level is one name, and '/' separates the levels of a category path (the API's
        // `category` string, interests): the '/' inside a name ("FRZN VEGETABLE/VEG DSH", in a
        // third of the products) becomes '-'.
        std::string name(v);
        std::replace(name.begin(), name.end(), '/', '-');
        a.category->push_back(std::move(name));
      }
      std::string_view type = field(col[5]), category = field(col[4]), dept = field(col[2]);
      std::string title(!IsNa(type) ? type : !IsNa(category) ? category : dept);
      if (!IsNa(field(col[6]))) title += " " + std::string(field(col[6]));
      a.title = std::move(title);
      if (!IsNa(field(col[3]))) a.brand = std::string(field(col[3]));
      if (!IsNa(field(col[1]))) a.tags = {"manufacturer:" + std::string(field(col[1]))};
      bool control = HasControlChars(*a.title) || (a.brand && HasControlChars(*a.brand));
      for (const std::string& level : *a.category) control = control || HasControlChars(level);
      for (const std::string& tag : a.tags.value_or(std::vector<std::string>{})) {
        control = control || HasControlChars(tag);
      }
      if (control) *problem = RowProblem{"text contains control characters"};
      if (*problem) return Status::Ok();
      run.Accept();
      return run.writer().AddProduct(std::move(*id), std::move(a));
    });
  }
  return Status::InvalidArgument(path +
                                 ": not a Complete Journey transactions or products file "
                                 "(expected columns household_id,basket_id,... or "
                                 "product_id,manufacturer_id,department,...)");
}

// ---- CDNOW sample (Fader, Hardie & Lee) ----

// Columns: customer id, sample id, date YYYYMMDD, number of CDs, dollar value. Every row is one
// transaction of one generic product "CD" (the data has no product detail).
Result<ImportReport> ImportCdnowOnce(Store& store, const std::string& path,
                                     const ImportOptions& options) {
  AFFINITY_ASSIGN_OR_RETURN(
      auto source, OpenWhitespaceSource(path, {"customer", "sample_id", "date", "cds", "dollars"}));
  FileRun run(store, *source, path, "cdnow", options);
  std::unordered_map<std::string, int64_t> occurrences;  // customer:date -> rows so far
  bool product_written = false;
  return run.Run([&](std::optional<RowProblem>* problem) -> Status {
    RowSource& s = *source;
    auto customer = ParseId(s.Field(0), "customer", problem);
    std::string_view date = Trim(s.Field(2).value_or(""));
    std::optional<UnixSeconds> time;
    if (date.size() != 8 || date.find_first_not_of("0123456789") != std::string_view::npos) {
      *problem = RowProblem{"date '" + std::string(date) + "' is not YYYYMMDD"};
    } else {
      std::string iso = std::string(date.substr(0, 4)) + "-" + std::string(date.substr(4, 2)) +
                        "-" + std::string(date.substr(6, 2));
      time = ParseTime(iso, "date", problem);
    }
    auto cds = ParseNumber(s.Field(3).value_or(""), "cds", problem);
    auto dollars = ParseNumber(s.Field(4).value_or(""), "dollars", problem);
    if (*problem) return Status::Ok();
    if (*cds <= 0 || *dollars < 0) {
      *problem = RowProblem{"need cds > 0 and dollars >= 0"};
      return Status::Ok();
    }
    if (!product_written) {
      ProductAttributes cd;
      cd.title = "CD";
      cd.category = std::vector<std::string>{"Music", "CDs"};
      AFFINITY_RETURN_IF_ERROR(run.writer().AddProduct("CD", std::move(cd)));
      product_written = true;
    }
    run.Accept();
    std::string key = *customer + ":" + std::string(date);
    EventInput e;
    e.event_id = "CDNOW:" + key + ":" + std::to_string(++occurrences[key]);
    e.customer = std::move(*customer);
    e.product = "CD";
    e.time = *time;
    e.quantity = *cds;
    e.unit_price = *dollars / *cds;
    e.channel = "mail";
    return run.writer().AddEvent(std::move(e));
  });
}

// Strict imports validate the whole file in a dry run first, so they write all or nothing.
template <typename Once>
Result<ImportReport> StrictAware(Store& store, const std::string& path,
                                 const ImportOptions& options, Once once) {
  if (options.strict && !options.dry_run) {
    ImportOptions check = options;
    check.dry_run = true;
    check.on_progress = nullptr;
    AFFINITY_RETURN_IF_ERROR(once(store, path, check).status());
  }
  return once(store, path, options);
}

}  // namespace

std::string RowError::ToString() const { return file + ":" + std::to_string(line) + ": " + reason; }

Result<ImportKind> ParseImportKind(std::string_view name) {
  for (auto kind : {ImportKind::kCustomers, ImportKind::kProducts, ImportKind::kPurchases}) {
    if (name == KindName(kind)) return kind;
  }
  return Status::InvalidArgument(
      "unknown kind '" + std::string(name) + "' (expected customers, products or purchases)",
      "kind");
}

Result<ImportPreset> ParseImportPreset(std::string_view name) {
  if (name == "online-retail") return ImportPreset::kOnlineRetail;
  if (name == "completejourney") return ImportPreset::kCompleteJourney;
  if (name == "cdnow") return ImportPreset::kCdnow;
  return Status::InvalidArgument("unknown preset '" + std::string(name) +
                                     "' (expected online-retail, completejourney or cdnow)",
                                 "preset");
}

Status ImportOptions::Validate() const {
  if (batch_size < 1) return Status::InvalidArgument("batch_size must be >= 1", "batch_size");
  if (max_reported_errors < 0) {
    return Status::InvalidArgument("max_reported_errors must be >= 0", "max_reported_errors");
  }
  const auto& fields = KindFields().at(kind);
  for (const auto& [field, column] : columns) {
    if (std::find(fields.begin(), fields.end(), field) == fields.end()) {
      std::string valid;
      for (const auto& f : fields) valid += (valid.empty() ? "" : ", ") + f;
      return Status::InvalidArgument("unknown field '" + field + "' for kind " +
                                         std::string(KindName(kind)) + " (fields: " + valid + ")",
                                     "columns");
    }
  }
  return Status::Ok();
}

Result<std::map<std::string, std::string>> ParseColumnMapping(std::string_view spec) {
  std::map<std::string, std::string> out;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view entry = Trim(spec.substr(0, comma));
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos || Trim(entry.substr(0, eq)).empty() ||
        Trim(entry.substr(eq + 1)).empty()) {
      return Status::InvalidArgument(
          "column mapping entry '" + std::string(entry) + "' is not field=column", "columns");
    }
    std::string field(Trim(entry.substr(0, eq)));
    if (!out.emplace(field, std::string(Trim(entry.substr(eq + 1)))).second) {
      return Status::InvalidArgument("field '" + field + "' is mapped twice", "columns");
    }
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
  }
  return out;
}

Result<ImportReport> ImportFile(Store& store, const std::string& path,
                                const ImportOptions& options) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  return StrictAware(store, path, options, ImportGenericOnce);
}

Result<std::vector<ImportReport>> ImportPresetFiles(Store& store, ImportPreset preset,
                                                    const std::vector<std::string>& paths,
                                                    const ImportOptions& options) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  if (paths.empty()) return Status::InvalidArgument("no input files", "files");
  std::vector<ImportReport> reports;
  for (const auto& path : paths) {
    auto once = preset == ImportPreset::kOnlineRetail      ? ImportOnlineRetailOnce
                : preset == ImportPreset::kCompleteJourney ? ImportCompleteJourneyOnce
                                                           : ImportCdnowOnce;
    AFFINITY_ASSIGN_OR_RETURN(ImportReport report, StrictAware(store, path, options, once));
    reports.push_back(std::move(report));
  }
  return reports;
}

}  // namespace affinity
