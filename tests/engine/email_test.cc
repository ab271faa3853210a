// Letters as email: addresses, header encoding, quoted-printable, MIME structure, tokens, the
// .eml sink.
#include "affinity/email.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace affinity {
namespace {

using testing::ScratchDir;

// Decodes quoted-printable (RFC 2045 §6.7) back to bytes with "\n" line ends.
std::string DecodeQp(std::string_view qp) {
  std::string out;
  for (size_t i = 0; i < qp.size(); ++i) {
    if (qp[i] == '=' && i + 2 < qp.size() && qp[i + 1] == '\r' && qp[i + 2] == '\n') {
      i += 2;  // soft line break
    } else if (qp[i] == '=' && i + 2 < qp.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(qp.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else if (qp[i] == '\r' && i + 1 < qp.size() && qp[i + 1] == '\n') {
      out.push_back('\n');
      ++i;
    } else {
      out.push_back(qp[i]);
    }
  }
  return out;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find("\r\n", start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 2;
  }
  return lines;
}

EmailMessage Sample() {
  EmailMessage m;
  m.from_address = "news@shop.example";
  m.from_name = "Shop";
  m.to_address = "zoe@example.com";
  m.to_name = "Zoë Müller";
  m.subject = "New: Enamel mug";
  m.text = "Hello Zoë,\n.a line that starts with a dot\n" + std::string(200, 'x') + "\n";
  m.html = "<p>Hello Zo&euml;</p>";
  m.message_id = "c1.7@shop.example";
  m.unsubscribe_url = "https://shop.example/unsubscribe?customer=c7&token=abc";
  m.date = 1795000000;
  return m;
}

TEST(Email, AddressValidation) {
  for (const char* good : {"a@b.c", "first.last+tag@mail.example.com", "o'neil@x-y.org"}) {
    EXPECT_TRUE(IsValidEmailAddress(good)) << good;
  }
  for (const char* bad :
       {"", "plain", "a@", "@b.c", "a@@b.c", "a b@c.d", "a@b.c\r\nBcc: x@y.z", "<a@b.c>",
        "a@b.c,d@e.f", "\"q\"@b.c", ".a@b.c", "a..b@c.d", "a@-b.c", "a@b..c", "zoë@b.c"}) {
    EXPECT_FALSE(IsValidEmailAddress(bad)) << bad;
  }
}

TEST(Email, HeaderTextIsEncodedAndCannotBreakTheLine) {
  EXPECT_EQ(EncodeHeaderText("New: Enamel mug"), "New: Enamel mug");
  EXPECT_EQ(EncodeHeaderText("Zoë"), "=?UTF-8?B?Wm/Dqw==?=");
  // CR/LF and other controls become spaces; nothing can start a new header.
  EXPECT_EQ(EncodeHeaderText("Mug\r\nBcc: evil@x.example"), "Mug Bcc: evil@x.example");
  const std::string long_utf8 = EncodeHeaderText(std::string(40, 'x') + "ü" + std::string(60, 'y'));
  for (const std::string& line : Lines(long_utf8)) {
    EXPECT_LE(line.size(), 76u) << line;
  }
  // A word too long to fold is encoded (encoded words fold).
  const std::string long_word = EncodeHeaderText(std::string(200, 'w'));
  EXPECT_EQ(long_word.rfind("=?UTF-8?B?", 0), 0u);
  for (const std::string& line : Lines(long_word)) EXPECT_LE(line.size(), 76u - 9) << line;
  // Text that looks like an encoded word is encoded itself.
  EXPECT_EQ(EncodeHeaderText("=?UTF-8?B?x?=").rfind("=?UTF-8?B?", 0), 0u);
}

TEST(Email, QuotedPrintableRoundTripsWithShortLines) {
  const std::string text = "Prices from £12.50 = a bargain.\n.leading dot\ntrailing space \n" +
                           std::string(300, 'z') + "\nend";
  const std::string qp = QuotedPrintable(text);
  for (const std::string& line : Lines(qp)) {
    EXPECT_LE(line.size(), 76u);
    EXPECT_FALSE(!line.empty() && line[0] == '.') << "a line starts with a dot: " << line;
    EXPECT_FALSE(!line.empty() && line.back() == ' ') << "trailing space: " << line;
  }
  EXPECT_EQ(DecodeQp(qp), text);
}

TEST(Email, MimeMessageHasBothPartsAndSafeHeaders) {
  EmailMessage m = Sample();
  m.to_name = "Eve\r\nBcc: spy@evil.example";
  m.subject = "Hi\nX-Injected: yes";
  auto message = BuildMimeMessage(m);
  ASSERT_TRUE(message.ok()) << message.status().ToString();
  const std::string& s = *message;
  const size_t body = s.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  std::vector<std::string> headers = Lines(s.substr(0, body));
  int to = 0;
  for (const std::string& h : headers) {
    EXPECT_NE(h.rfind("Bcc:", 0), 0u) << h;
    EXPECT_NE(h.rfind("X-Injected:", 0), 0u) << h;
    to += h.rfind("To:", 0) == 0;
  }
  EXPECT_EQ(to, 1);
  // A display name with specials (":" "@") is written as encoded words, never as an address.
  EXPECT_NE(s.find("\r\nTo: =?UTF-8?B?"), std::string::npos);
  EXPECT_NE(s.find("Message-ID: <c1.7@shop.example>\r\n"), std::string::npos);
  EXPECT_NE(s.find("List-Unsubscribe: <https://shop.example/unsubscribe?customer=c7&token=abc>"),
            std::string::npos);
  // One-click (mail clients POST to the link and say it is done) only when asked: the letter's
  // link opens a page, which a POST would not unsubscribe through.
  EXPECT_EQ(s.find("List-Unsubscribe-Post:"), std::string::npos);
  m.one_click = true;
  EXPECT_NE(BuildMimeMessage(m)->find("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            std::string::npos);
  EXPECT_NE(s.find("Date: "), std::string::npos);
  EXPECT_NE(s.find("Content-Type: multipart/alternative; boundary=\""), std::string::npos);
  const size_t text_part = s.find("Content-Type: text/plain; charset=utf-8");
  const size_t html_part = s.find("Content-Type: text/html; charset=utf-8");
  ASSERT_NE(text_part, std::string::npos);
  ASSERT_NE(html_part, std::string::npos);
  EXPECT_LT(text_part, html_part);  // the preferred (HTML) part last
  // The text part decodes back to the text.
  const size_t text_body = s.find("\r\n\r\n", text_part) + 4;
  const size_t text_end = s.find("\r\n--=_affinity_", text_body);
  EXPECT_EQ(DecodeQp(s.substr(text_body, text_end - text_body)), m.text);
  EXPECT_NE(s.find("--=_affinity_"), std::string::npos);
  EXPECT_EQ(s.substr(s.size() - 4), "--\r\n");
}

TEST(Email, EveryHeaderLineIsShortWhateverTheData) {
  EmailMessage m = Sample();
  m.to_name = std::string(300, 'N');                 // atoms only, but long
  m.from_name = "Ünïcödé " + std::string(100, 'x');  // non-ASCII and long
  m.subject = std::string(500, 'S') + " and " + "Zoë " + std::string(90, 'y');
  auto message = BuildMimeMessage(m);
  ASSERT_TRUE(message.ok()) << message.status().ToString();
  const std::string headers = message->substr(0, message->find("\r\n\r\n"));
  for (const std::string& line : Lines(headers)) {
    EXPECT_LE(line.size(), 78u) << line;
    // Continuation lines start with white space; every other line is a known header.
    if (line[0] != ' ') {
      EXPECT_NE(line.find(": "), std::string::npos) << line;
    }
  }
}

TEST(Email, MimeMessageRefusesWhatCannotBeMadeSafe) {
  EmailMessage m = Sample();
  m.to_address = "a@b.c\r\nBcc: x@y.z";
  EXPECT_EQ(BuildMimeMessage(m).status().field(), "to_address");
  m = Sample();
  m.from_address = "shop";
  EXPECT_EQ(BuildMimeMessage(m).status().field(), "from_address");
  m = Sample();
  m.unsubscribe_url = "https://x.example/u?t=1> <https://evil.example";
  EXPECT_EQ(BuildMimeMessage(m).status().field(), "unsubscribe_url");
  m = Sample();
  m.unsubscribe_url = "javascript:alert(1)";
  EXPECT_EQ(BuildMimeMessage(m).status().field(), "unsubscribe_url");
  m = Sample();
  m.message_id = "no-at-sign";
  EXPECT_EQ(BuildMimeMessage(m).status().field(), "message_id");
}

TEST(Email, UnsubscribeTokensAreBoundToTheCustomerAndSecret) {
  const std::string secret(32, 's');
  const std::string token = UnsubscribeToken(secret, "c7");
  // Pinned (Python's hmac module: the first 16 bytes of HMAC-SHA256, base64url without padding):
  // links in letters already sent must keep working.
  EXPECT_EQ(token, "wH1I6-lLcPZTI6qzKqnbEA");
  EXPECT_EQ(token.size(), 22u);
  EXPECT_EQ(
      token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos);
  EXPECT_TRUE(VerifyUnsubscribeToken(secret, "c7", token));
  EXPECT_FALSE(VerifyUnsubscribeToken(secret, "c8", token));
  EXPECT_FALSE(VerifyUnsubscribeToken(std::string(32, 't'), "c7", token));
  EXPECT_FALSE(VerifyUnsubscribeToken(secret, "c7", token.substr(1)));
  EXPECT_FALSE(VerifyUnsubscribeToken(secret, "c7", ""));
}

TEST(Email, EmlDirectoryWritesWholeFilesAndOverwritesOnRetry) {
  ScratchDir dir;
  auto sink = OpenEmlDirectory(dir.Sub("out"));
  ASSERT_TRUE(sink.ok());
  OutgoingLetter letter{"news@shop.example", "zoe@example.com", "c1-7.eml", "first"};
  ASSERT_TRUE((*sink)->Deliver(letter).ok());
  letter.message = "second";
  ASSERT_TRUE((*sink)->Deliver(letter).ok());
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.Sub("out"))) {
    names.push_back(e.path().filename().string());
  }
  ASSERT_EQ(names, std::vector<std::string>{"c1-7.eml"});  // no temporary file left
  std::ifstream in(dir.Sub("out") + "/c1-7.eml");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "second");
  letter.file_name = "../escape.eml";
  EXPECT_FALSE((*sink)->Deliver(letter).ok());
  EXPECT_EQ(OpenSmtp({"http://x", "", "", false, 30}).status().field(), "smtp");
  EXPECT_EQ(OpenSmtp({"smtp://user:pw@x", "", "", false, 30}).status().field(), "smtp");
}

}  // namespace
}  // namespace affinity
