// Email: RFC 5322 messages with a text and an HTML part (multipart/alternative), safe headers,
// unsubscribe tokens, and the two ways a letter leaves the engine: an .eml file in a directory
// or SMTP (libcurl). The campaign runner (campaign.h) uses them; docs/campaigns.md describes the
// letters.
//
// Header safety. Every header value built here comes from data (a customer's name, a product
// title in the subject) and is made safe before it is written: control characters (CR and LF
// included) become spaces, runs of white space collapse, and any value that is not plain
// printable ASCII is written as RFC 2047 encoded words (UTF-8, base64). Addresses are not
// encoded but validated (IsValidEmailAddress); a message to an invalid address is refused. So no
// input can add a header or a recipient.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "affinity/status.h"
#include "affinity/types.h"

namespace affinity {

// A plain addr-spec as shops store them: local@domain, ASCII, no spaces, quotes, angle brackets,
// commas or control characters, at most 254 characters, a dot-separated domain of letters,
// digits and hyphens. (Quoted local parts and address literals are refused, not parsed.)
bool IsValidEmailAddress(std::string_view address);

// An email address as the key of a person: lower-cased ASCII letters (the addresses
// IsValidEmailAddress accepts are ASCII). Accounts with the same key are one person for opt-outs
// (campaigns and audiences) and for campaigns' one letter per address.
std::string EmailAddressKey(std::string_view address);

// The header-safe form of a free-text value (see the file comment): printable ASCII in words of
// at most 70 characters as is, anything else as RFC 2047 encoded words of 64 characters, folded.
std::string EncodeHeaderText(std::string_view text);

// Quoted-printable (RFC 2045 §6.7) of UTF-8 text with CRLF line ends and lines of at most 76
// characters; "\n" in the input becomes a hard line break.
std::string QuotedPrintable(std::string_view text);

// RFC 5322 date: "Mon, 23 Nov 2026 17:00:00 +0000".
std::string Rfc5322Date(UnixSeconds time);

struct EmailMessage {
  std::string from_address;  // validated
  std::string from_name;     // display name, encoded
  std::string to_address;    // validated
  std::string to_name;       // display name, encoded (may be empty)
  std::string subject;       // encoded
  std::string text;          // text/plain part, UTF-8
  std::string html;          // text/html part, UTF-8
  std::string message_id;    // without angle brackets: "local@domain", validated like an address
  // The unsubscribe URL (List-Unsubscribe header, RFC 2369); empty: none. With `one_click`, also
  // List-Unsubscribe-Post (RFC 8058): mail clients then POST to it and tell the reader they are
  // unsubscribed, so it must unsubscribe on POST (as the server's POST /v1/unsubscribe does).
  std::string unsubscribe_url;
  bool one_click = false;
  UnixSeconds date = 0;
};

// The message as bytes (CRLF line ends): headers, then a multipart/alternative body with the
// text part first and the HTML part second (both UTF-8, quoted-printable). InvalidArgument
// naming the field ("to_address", "from_address", "message_id", "unsubscribe_url") when a value
// cannot be put in a header safely.
Result<std::string> BuildMimeMessage(const EmailMessage& message);

// The unsubscribe token of a customer: HMAC-SHA256(secret, "unsubscribe:" + customer id),
// first 16 bytes, base64url without padding (22 characters). Anyone with the token can opt this
// customer out, nobody can make one for another customer without the secret.
std::string UnsubscribeToken(std::string_view secret, std::string_view customer);
// Constant-time check of a token made by UnsubscribeToken.
bool VerifyUnsubscribeToken(std::string_view secret, std::string_view customer,
                            std::string_view token);

// Where a rendered letter goes.
struct OutgoingLetter {
  std::string envelope_from;  // SMTP MAIL FROM
  std::string recipient;      // SMTP RCPT TO
  std::string file_name;      // base name for a file sink ("<campaign>-<customer #>.eml")
  std::string message;        // BuildMimeMessage's bytes
};

class LetterSink {
 public:
  virtual ~LetterSink() = default;
  // Delivers one letter; OK only once it is accepted (file durable / server said 250).
  // Delivering the same letter twice must be harmless where the medium allows (a file sink
  // overwrites the same file). FailedPrecondition when this letter is refused for good (an SMTP
  // 5xx reply to its recipient but for a 5.7.x security or policy refusal, or to its message
  // after the data), IOError for a failure worth retrying (connection, timeout, 4xx, disk, and a
  // 5xx that refuses the session whatever the letter: authentication, TLS, the sender, the
  // greeting, relay access). Messages carry no address; they end with the enhanced status code
  // when the server gave one ("[5.1.1]").
  virtual Status Deliver(const OutgoingLetter& letter) = 0;
  // What the sink is, for reports: "eml:DIR" or "smtp:URL" (without credentials).
  virtual std::string Describe() const = 0;
};

// Writes each letter to DIR/<file_name>: a temporary file, fsync'ed, then renamed over the final
// name, so a crash leaves either the whole letter or none. Creates DIR. IOError if it cannot.
Result<std::unique_ptr<LetterSink>> OpenEmlDirectory(const std::string& dir);

struct SmtpOptions {
  // smtp://host[:port] (STARTTLS when the server offers it, or always with require_tls) or
  // smtps://host[:port] (TLS from the start).
  std::string url;
  std::string user;          // empty: no authentication
  std::string password;      // never logged or reported
  bool require_tls = false;  // refuse to send unless encrypted (always so with a user)
  int timeout_seconds = 30;  // per message, connect included
};

// One SMTP connection, reused for every letter (libcurl; reconnects when the server drops it).
// With a user, TLS is required (the password never goes out in plain text).
// InvalidArgument (field "smtp") for a URL that is not smtp:// or smtps://. Delivery errors name
// the server's reply code.
Result<std::unique_ptr<LetterSink>> OpenSmtp(const SmtpOptions& options);

}  // namespace affinity
