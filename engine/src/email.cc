#include "affinity/email.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <vector>

#include "codec.h"
#include "hmac.h"

namespace affinity {
namespace {

// Base64 (RFC 4648) through OpenSSL; `url`: the URL-safe alphabet without padding.
std::string Base64(std::string_view in, bool url = false) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  if (url) {
    for (char& ch : out) ch = ch == '+' ? '-' : (ch == '/' ? '_' : ch);
    while (!out.empty() && out.back() == '=') out.pop_back();
  }
  return out;
}

bool IsPrintableAscii(char ch) { return ch >= 0x20 && ch <= 0x7E; }

// Control characters (CR, LF, tab, DEL...) become spaces; runs of spaces collapse; trimmed.
std::string Sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    const bool control = u < 0x20 || u == 0x7F;
    const char c = control ? ' ' : ch;
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// RFC 2047 encoded words of `text` (already sanitized), split at UTF-8 character boundaries so
// that each word is at most 75 characters, joined by folding white space.
std::string EncodedWords(std::string_view text) {
  // 39 bytes = 52 base64 characters; with "=?UTF-8?B?" and "?=" a word is 64 characters, so
  // "Subject: " + a word stays within RFC 2047's 76.
  constexpr size_t kMaxBytes = 39;
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(text.size(), start + kMaxBytes);
    // Do not cut a multi-byte character: back off continuation bytes (10xxxxxx).
    while (end < text.size() && end > start + 1 &&
           (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
      --end;
    }
    if (!out.empty()) out.append("\r\n ");
    out.append("=?UTF-8?B?");
    out.append(Base64(text.substr(start, end - start)));
    out.append("?=");
    start = end;
  }
  return out;
}

// Folds an unstructured header value of printable ASCII at spaces so lines stay under 78.
std::string FoldAscii(std::string_view name, std::string_view value) {
  std::string out;
  size_t line = name.size() + 2;
  size_t start = 0;
  while (start < value.size()) {
    size_t space = value.find(' ', start + 1);
    if (space == std::string_view::npos) space = value.size();
    const std::string_view word = value.substr(start, space - start);  // with its leading space
    if (line + word.size() > 78 && !out.empty() && word.front() == ' ') {
      out.append("\r\n");
      line = 0;
    }
    out.append(word);
    line += word.size();
    start = space;
  }
  return out;
}

// A display name as a header phrase: atoms and spaces as is, anything else encoded.
// Whether every space-separated word of `text` is at most 70 characters (so folding at spaces
// keeps lines short).
bool ShortWords(std::string_view text) {
  size_t run = 0;
  for (char ch : text) {
    run = ch == ' ' ? 0 : run + 1;
    if (run > 70) return false;
  }
  return true;
}

// A display name as a header phrase: up to 64 characters of atoms and spaces as is, anything
// else as encoded words.
std::string EncodePhrase(std::string_view name) {
  const std::string clean = Sanitize(name);
  const bool atoms = std::all_of(clean.begin(), clean.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == ' ' ||
           std::strchr("!#$%&'*+-/=?^_`{|}~", ch) != nullptr;
  });
  if (atoms && clean.size() <= 64 && clean.find("=?") == std::string::npos) return clean;
  return EncodedWords(clean);
}

// "phrase <address>"; after encoded words the address goes on a folded line of its own.
std::string Mailbox(std::string_view name, std::string_view address) {
  const std::string phrase = EncodePhrase(name);
  if (phrase.empty()) return "<" + std::string(address) + ">";
  const bool encoded = phrase.find("=?") != std::string::npos;
  return phrase + (encoded ? "\r\n <" : " <") + std::string(address) + ">";
}

bool IsHeaderSafeToken(std::string_view value) {
  return !value.empty() && std::all_of(value.begin(), value.end(), [](char ch) {
    return IsPrintableAscii(ch) && ch != ' ' && ch != '<' && ch != '>';
  });
}

}  // namespace

std::string EmailAddressKey(std::string_view address) {
  std::string a(address);
  for (char& c : a) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return a;
}

bool IsValidEmailAddress(std::string_view address) {
  if (address.size() < 3 || address.size() > 254) return false;
  const size_t at = address.find('@');
  if (at == std::string_view::npos || address.find('@', at + 1) != std::string_view::npos) {
    return false;
  }
  const std::string_view local = address.substr(0, at);
  const std::string_view domain = address.substr(at + 1);
  if (local.empty() || local.size() > 64 || domain.empty()) return false;
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
    return false;
  }
  for (char ch : local) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' &&
        std::strchr("!#$%&'*+/=?^_`{|}~-", ch) == nullptr) {
      return false;
    }
  }
  size_t start = 0;
  while (start <= domain.size()) {
    size_t dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    const std::string_view label = domain.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char ch : label) {
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-') return false;
    }
    start = dot + 1;
  }
  return true;
}

std::string EncodeHeaderText(std::string_view text) {
  const std::string clean = Sanitize(text);
  const bool ascii = std::all_of(clean.begin(), clean.end(), IsPrintableAscii);
  if (ascii && ShortWords(clean) && clean.find("=?") == std::string::npos) return clean;
  return EncodedWords(clean);
}

std::string QuotedPrintable(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    const bool last = end == std::string_view::npos;
    if (last) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t width = 0;
    for (size_t i = 0; i < line.size(); ++i) {
      const auto u = static_cast<unsigned char>(line[i]);
      const bool trailing_space = (u == ' ' || u == '\t') && i + 1 == line.size();
      bool encode = !((u >= 33 && u <= 126 && u != '=') || u == ' ' || u == '\t') || trailing_space;
      size_t need = encode ? 3 : 1;
      // Soft break when the encoded char would not fit (75 + "=" = 76).
      if (width + need > 75) {
        out.append("=\r\n");
        width = 0;
      }
      if (u == '.' && width == 0) {  // a dot opening a line is encoded (SMTP dot-stuffing)
        encode = true;
        need = 3;
      }
      if (encode) {
        out.push_back('=');
        out.push_back(kHex[u >> 4]);
        out.push_back(kHex[u & 15]);
      } else {
        out.push_back(static_cast<char>(u));
      }
      width += need;
    }
    if (last) break;
    out.append("\r\n");
    start = end + 1;
  }
  return out;
}

std::string Rfc5322Date(UnixSeconds time) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto t = static_cast<std::time_t>(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

Result<std::string> BuildMimeMessage(const EmailMessage& m) {
  if (!IsValidEmailAddress(m.from_address)) {
    return Status::InvalidArgument("not a valid email address: '" + Sanitize(m.from_address) + "'",
                                   "from_address");
  }
  if (!IsValidEmailAddress(m.to_address)) {
    return Status::InvalidArgument("not a valid email address", "to_address");
  }
  if (!IsHeaderSafeToken(m.message_id) || m.message_id.find('@') == std::string::npos) {
    return Status::InvalidArgument("a message id is printable ASCII with an '@'", "message_id");
  }
  if (!m.unsubscribe_url.empty() &&
      (!IsHeaderSafeToken(m.unsubscribe_url) || m.unsubscribe_url.size() > 900 ||
       !(m.unsubscribe_url.starts_with("https://") || m.unsubscribe_url.starts_with("http://") ||
         m.unsubscribe_url.starts_with("mailto:")))) {
    return Status::InvalidArgument(
        "the unsubscribe URL must be an http(s) or mailto URL of printable ASCII without spaces",
        "unsubscribe_url");
  }
  // "=_" cannot occur in quoted-printable text, so the boundary never appears in a part.
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx",
                static_cast<unsigned long long>(codec::Fnv1a64(m.message_id)));
  const std::string boundary = std::string("=_affinity_") + hash;
  std::string out;
  out.reserve(m.text.size() + m.html.size() + 1024);
  auto header = [&](std::string_view name, const std::string& value) {
    out.append(name).append(": ").append(value).append("\r\n");
  };
  header("From", Mailbox(m.from_name, m.from_address));
  header("To", Mailbox(m.to_name, m.to_address));
  const std::string subject = EncodeHeaderText(m.subject);
  header("Subject", subject.find("=?") == 0 ? subject : FoldAscii("Subject", subject));
  header("Date", Rfc5322Date(m.date));
  header("Message-ID", "<" + m.message_id + ">");
  header("MIME-Version", "1.0");
  if (!m.unsubscribe_url.empty()) {
    header("List-Unsubscribe", "<" + m.unsubscribe_url + ">");
    if (m.one_click && !m.unsubscribe_url.starts_with("mailto:")) {
      header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
    }
  }
  header("Content-Type", "multipart/alternative; boundary=\"" + boundary + "\"");
  out.append("\r\nThis is a multi-part message in MIME format.\r\n");
  auto part = [&](const char* type, const std::string& body) {
    out.append("\r\n--").append(boundary).append("\r\n");
    out.append("Content-Type: ").append(type).append("; charset=utf-8\r\n");
    out.append("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    out.append(QuotedPrintable(body));
  };
  part("text/plain", m.text);
  part("text/html", m.html);
  out.append("\r\n--").append(boundary).append("--\r\n");
  return out;
}

std::string UnsubscribeToken(std::string_view secret, std::string_view customer) {
  const std::string mac = HmacSha256(secret, "unsubscribe:" + std::string(customer));
  return Base64(std::string_view(mac).substr(0, 16), /*url=*/true);
}

bool VerifyUnsubscribeToken(std::string_view secret, std::string_view customer,
                            std::string_view token) {
  const std::string expected = UnsubscribeToken(secret, customer);
  return token.size() == expected.size() &&
         CRYPTO_memcmp(token.data(), expected.data(), expected.size()) == 0;
}

// ---- Sinks ----

namespace {

class EmlDirectory final : public LetterSink {
 public:
  explicit EmlDirectory(std::string dir) : dir_(std::move(dir)) {}

  Status Deliver(const OutgoingLetter& letter) override {
    if (letter.file_name.empty() || letter.file_name.find('/') != std::string::npos ||
        letter.file_name.front() == '.') {
      return Status::InvalidArgument("bad letter file name '" + letter.file_name + "'");
    }
    const std::string final_path = dir_ + "/" + letter.file_name;
    // A hidden name without the .eml suffix, so a pickup job never takes a half-written letter.
    const std::string tmp_path = dir_ + "/." + letter.file_name + ".tmp";
    const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return Status::IOError("cannot create " + tmp_path + ": " + std::strerror(errno));
    auto fail = [&](const char* what) {
      const std::string err = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp_path.c_str());
      return Status::IOError(std::string("cannot ") + what + " " + tmp_path + ": " + err);
    };
    const char* p = letter.message.data();
    size_t left = letter.message.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail("write");
      p += n;
      left -= static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) return fail("sync");
    if (::close(fd) != 0) {
      const std::string err = std::strerror(errno);
      ::unlink(tmp_path.c_str());
      return Status::IOError("cannot close " + tmp_path + ": " + err);
    }
    if (std::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
      const std::string err = std::strerror(errno);
      ::unlink(tmp_path.c_str());
      return Status::IOError("cannot rename to " + final_path + ": " + err);
    }
    // The rename is durable once the directory is synced.
    const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
    return Status::Ok();
  }

  std::string Describe() const override { return "eml:" + dir_; }

 private:
  std::string dir_;
};

// The enhanced status code (RFC 3463, "5.1.1") of an SMTP reply line ("550 5.1.1 No such
// user"), or "".
std::string EnhancedStatus(std::string_view line) {
  if (line.size() < 5 || (line[3] != ' ' && line[3] != '-')) return "";
  line.remove_prefix(4);
  size_t n = 0;
  int dots = 0;
  while (n < line.size() && (std::isdigit(static_cast<unsigned char>(line[n])) || line[n] == '.')) {
    dots += line[n] == '.';
    ++n;
  }
  if (dots != 2 || n < 5 || line[0] < '2' || line[0] > '5' || line[1] != '.') return "";
  return std::string(line.substr(0, n));
}

// libcurl's debug callback: keeps the server's reply lines of this transfer (the last 32).
int OnDebug(CURL*, curl_infotype type, char* data, size_t size, void* replies) {
  if (type == CURLINFO_HEADER_IN && replies) {
    auto* lines = static_cast<std::vector<std::string>*>(replies);
    if (lines->size() == 32) lines->erase(lines->begin());
    std::string line(data, size);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    lines->push_back(std::move(line));
  }
  return 0;
}

class Smtp final : public LetterSink {
 public:
  explicit Smtp(SmtpOptions options) : options_(std::move(options)) {}
  ~Smtp() override {
    if (curl_) curl_easy_cleanup(curl_);
  }

  Status Init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    curl_ = curl_easy_init();
    if (!curl_) return Status::Internal("libcurl could not start");
    return Status::Ok();
  }

  Status Deliver(const OutgoingLetter& letter) override {
    if (!IsValidEmailAddress(letter.recipient) || !IsValidEmailAddress(letter.envelope_from)) {
      return Status::InvalidArgument("not a valid envelope address");
    }
    struct Reader {
      const std::string* data;
      size_t pos = 0;
      static size_t Read(char* buffer, size_t size, size_t items, void* self) {
        auto* r = static_cast<Reader*>(self);
        const size_t n = std::min(size * items, r->data->size() - r->pos);
        std::memcpy(buffer, r->data->data() + r->pos, n);
        r->pos += n;
        return n;
      }
    } reader{&letter.message};
    const std::string from = "<" + letter.envelope_from + ">";
    curl_slist* rcpt = curl_slist_append(nullptr, ("<" + letter.recipient + ">").c_str());
    std::array<char, CURL_ERROR_SIZE> error{};
    curl_easy_setopt(curl_, CURLOPT_URL, options_.url.c_str());
    curl_easy_setopt(curl_, CURLOPT_MAIL_FROM, from.c_str());
    curl_easy_setopt(curl_, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(curl_, CURLOPT_READFUNCTION, &Reader::Read);
    curl_easy_setopt(curl_, CURLOPT_READDATA, &reader);
    curl_easy_setopt(curl_, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl_, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(letter.message.size()));
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error.data());
    // The server's reply lines, for the enhanced status code (RFC 3463) of the one libcurl
    // reports by its 3-digit code only. (The debug callback needs VERBOSE; it replaces libcurl's
    // printing.)
    std::vector<std::string> replies;
    curl_easy_setopt(curl_, CURLOPT_DEBUGFUNCTION, &OnDebug);
    curl_easy_setopt(curl_, CURLOPT_DEBUGDATA, &replies);
    curl_easy_setopt(curl_, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, static_cast<long>(options_.timeout_seconds));
    // A password never crosses the network in plain text: with credentials, TLS is required.
    const bool tls = options_.require_tls || !options_.user.empty();
    curl_easy_setopt(curl_, CURLOPT_USE_SSL,
                     tls ? static_cast<long>(CURLUSESSL_ALL) : static_cast<long>(CURLUSESSL_TRY));
    if (!options_.user.empty()) {
      curl_easy_setopt(curl_, CURLOPT_USERNAME, options_.user.c_str());
      curl_easy_setopt(curl_, CURLOPT_PASSWORD, options_.password.c_str());
    }
    const CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(rcpt);
    curl_easy_setopt(curl_, CURLOPT_MAIL_RCPT, nullptr);
    curl_easy_setopt(curl_, CURLOPT_READDATA, nullptr);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(curl_, CURLOPT_DEBUGDATA, nullptr);
    curl_easy_setopt(curl_, CURLOPT_VERBOSE, 0L);
    if (rc != CURLE_OK) {
      long reply = 0;
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &reply);
      // (No address in the message: it ends up in reports and logs.)
      const std::string said = error[0] ? std::string(error.data()) : curl_easy_strerror(rc);
      std::string message = "SMTP delivery failed: " + said;
      if (reply > 0) message += " (server reply " + std::to_string(reply) + ")";
      // (After a refusal libcurl may send RSET or QUIT: the reply with the reported code.)
      std::string enhanced;
      for (auto it = replies.rbegin(); it != replies.rend() && reply > 0; ++it) {
        if (it->starts_with(std::to_string(reply))) {
          enhanced = EnhancedStatus(*it);
          break;
        }
      }
      if (!enhanced.empty()) message += " [" + enhanced + "]";
      // Refused for good, so never retried: a 5xx to this letter's recipient (RCPT), but for a
      // security or policy refusal (enhanced status 5.7.x: relay access denied, authentication
      // required, which refuse every recipient alike), or to the message itself (the reply
      // after its data: libcurl 7.88 reports it as a weird server reply with no message, older
      // ones as a receive error). A 5xx anywhere else refuses the session, whatever the letter:
      // a wrong password (535), authentication or TLS required (530), the sender refused at MAIL,
      // the greeting (whose message libcurl writes): worth retrying once the configuration is
      // fixed, and counted toward the run's stop after 10 failures in a row.
      const bool to_recipient = said.starts_with("RCPT failed") && !enhanced.starts_with("5.7.");
      const bool to_message =
          (rc == CURLE_WEIRD_SERVER_REPLY || rc == CURLE_RECV_ERROR) && error[0] == '\0';
      if (reply >= 500 && reply < 600 && (to_recipient || to_message)) {
        return Status::FailedPrecondition(message);
      }
      return Status::IOError(message);
    }
    return Status::Ok();
  }

  std::string Describe() const override { return "smtp:" + options_.url; }

 private:
  SmtpOptions options_;
  CURL* curl_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<LetterSink>> OpenEmlDirectory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create " + dir + ": " + ec.message());
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::IOError(dir + " is not a directory");
  }
  return std::unique_ptr<LetterSink>(std::make_unique<EmlDirectory>(dir));
}

Result<std::unique_ptr<LetterSink>> OpenSmtp(const SmtpOptions& options) {
  if (!(options.url.starts_with("smtp://") || options.url.starts_with("smtps://")) ||
      options.url.find('@') != std::string::npos) {
    return Status::InvalidArgument(
        "the SMTP server must be smtp://host[:port] or smtps://host[:port] (credentials go in "
        "the user and password options, not the URL)",
        "smtp");
  }
  if (options.timeout_seconds < 1) {
    return Status::InvalidArgument("must be >= 1", "smtp_timeout");
  }
  auto sink = std::make_unique<Smtp>(options);
  AFFINITY_RETURN_IF_ERROR(sink->Init());
  return std::unique_ptr<LetterSink>(std::move(sink));
}

}  // namespace affinity
