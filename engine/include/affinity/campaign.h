// Campaigns: new products → one personalized letter per interested customer, told once
// (docs/campaigns.md).
//
// A run has two phases.
//  1. Plan (first run of a campaign id). The new products (created at or after `since`, or the
//     ones given) each get their audience over the whole customer base from the served model
//     (ServingEngine::Audience with all_customers: calibrated probabilities and reasons). The
//     audiences merge per customer, best product first, and the rules apply in this order, each
//     counted in the report under its name:
//       opted_out      the customer opted out (CustomerProfile::opted_out);
//       no_email       no email address stored;
//       invalid_email  an address IsValidEmailAddress refuses;
//       address_opted_out  another account with the same address (case aside) opted out (an
//                      address is a person's: already_told and frequency_cap count the letters
//                      of every account with it, and delivery skips a letter whose address has
//                      opted out on any account since the plan);
//       already_told   every product of theirs was in an earlier letter (any campaign);
//                      products already told are dropped from a letter that keeps others;
//       frequency_cap  they got `frequency_cap_letters` letters (any other campaign, pending or
//                      sent) in the last `frequency_cap_days` whole days (UTC, rounded up;
//                      today included);
//       same_address   another account with the same address has a letter in this campaign
//                      with more expected buyers (one letter per address);
//       letter_cap     beyond `max_letters`, keeping the letters with the most expected buyers.
//     Pairs below `min_probability` never enter (counted as below_min_probability, per
//     customer-product pair, not per letter). The plan, every letter pending, is written to the
//     ledger in one atomic batch together with the campaign record.
//  2. Deliver. Each pending letter of the campaign is rendered (Mustache), delivered to the sink,
//     and then marked sent, one write per letter (durable as the store's writes are: the CLI
//     opens it with sync_writes). A letter the receiving server refuses for good (SMTP 5xx) is
//     marked rejected and never retried. A re-run of a planned campaign skips phase 1 and
//     delivers only what is still pending: a letter marked sent is never sent again, a pending
//     one is retried. A letter whose delivery outcome is unknown is delivered again by the next
//     run: the one in flight when a run dies (delivered, not yet marked), or one whose SMTP
//     exchange failed after the server had the message (a timeout waiting for its reply). With
//     the .eml sink that rewrites the same file; over SMTP the receiver gets it twice with the
//     same Message-ID (at-least-once, not exactly-once, for those letters only).
// A customer forgotten between the phases has no letters left (Store::ForgetCustomer deletes
// them). Pending letters are delivered most expected buyers first (the plan's order). A letter
// whose address another letter of the campaign was delivered to by this run (an address changed
// since the plan: one letter per address) is dropped from the ledger at delivery. A letter whose
// customer opted out, or no longer has a valid address, or whose address is now that of an
// account an earlier run's letter went to, or whose message their data cannot make (an
// unsubscribe link too long for a header) is skipped at delivery and stays pending. A plan without
// letters is not recorded: running the id again plans again.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "affinity/email.h"
#include "affinity/serving.h"
#include "affinity/status.h"
#include "affinity/store.h"

namespace affinity {

// The three Mustache templates of a letter (docs/campaigns.md lists the variables).
struct LetterTemplates {
  std::string subject;  // one line; rendered without HTML escaping, then header-encoded
  std::string text;     // text/plain part; rendered without HTML escaping
  std::string html;     // text/html part; {{var}} is HTML-escaped, {{{var}}} is not
  // The built-in templates (a plain shop letter: greeting, product cards, unsubscribe link).
  static LetterTemplates Default();
  // Reads subject.mustache, letter.txt.mustache and letter.html.mustache from `dir`; a file that
  // is missing keeps the built-in one. InvalidArgument (field = the file) for a template that
  // does not parse; IOError for an unreadable file.
  static Result<LetterTemplates> Load(const std::string& dir);
  // Writes the built-in templates to `dir` (to start a custom set). IOError.
  static Status WriteDefault(const std::string& dir);
};

// Who the letters are from, and the links in them.
struct LetterOptions {
  std::string shop_name = "Affinity Shop";
  std::string shop_url = "https://shop.example";
  std::string from_address = "news@shop.example";
  std::string from_name;  // default: shop_name
  // Mustache template of a product's link; variables {{product}} (URL-encoded id), {{shop_url}}.
  std::string product_url = "{{shop_url}}/products/{{product}}";
  // Mustache template of the unsubscribe link; {{customer}} and {{token}} are URL-encoded
  // (UnsubscribeToken with the store's campaign secret).
  std::string unsubscribe_url = "{{shop_url}}/unsubscribe?customer={{customer}}&token={{token}}";
  // Mustache template of the List-Unsubscribe header's URL, which mail clients POST to for a
  // one-click unsubscribe (RFC 8058), e.g. the server's /v1/unsubscribe?customer=&token=.
  // Empty: the header carries the unsubscribe link, without one-click (the link in the letter
  // should open a page with a button: link scanners follow links with GET; a mail client's
  // one-click POST to that page would unsubscribe nobody). Every link template must make an
  // absolute http(s) link (the unsubscribe ones may be mailto:), checked by Validate.
  std::string one_click_url;
  std::string currency = "£";  // printed before prices
  // Validates the addresses and URL templates. InvalidArgument naming the field.
  Status Validate() const;
};

struct CampaignOptions {
  // The campaign id (ValidateCampaignId). Empty: "new-since-YYYY-MM-DD" for a `since` run, or
  // "products-<hash of the sorted ids>" for a product list, so that running the same command
  // again resumes the same campaign.
  std::string campaign_id;
  // The new products: created at or after `since`, or exactly `products` (external ids). One of
  // the two is required; with both, the products created since that are in the list.
  std::optional<UnixSeconds> since;
  std::vector<std::string> products;
  // Products per letter, best first. Default 3.
  int products_per_letter = 3;
  // Leave out customer-product pairs less likely than this (calibrated, within the horizon).
  // Default 0.02.
  double min_probability = 0.02;
  // Window of the probabilities in days; 0: the model's calibration horizon.
  double horizon_days = 0;
  // At most this many letters per customer within frequency_cap_days (all campaigns). Default 1
  // in 7 days; frequency_cap_letters = 0 turns the cap off.
  int frequency_cap_letters = 1;
  double frequency_cap_days = 7;
  // Most letters in the campaign (the ones with the most expected buyers). 0: no cap.
  int64_t max_letters = 0;
  // "Now" for the frequency cap and the ledger's times; 0: the wall clock.
  UnixSeconds now = 0;
  // Plan and render every letter, write nothing to the ledger, deliver nothing (a sink given
  // anyway receives the rendered letters as previews).
  bool dry_run = false;

  // InvalidArgument naming the field.
  Status Validate() const;
};

// Called as the run goes, for progress output and tests' fault injection.
struct CampaignHooks {
  // After each product's audience: (products done, products in all).
  std::function<void(size_t, size_t)> audience_progress;
  // After a letter was delivered, before it is marked sent (letters delivered in this run).
  std::function<void(int64_t)> delivered;
  // After a letter was marked sent (letters marked in this run).
  std::function<void(int64_t)> marked_sent;
};

struct CampaignProductReport {
  std::string product;  // external id
  std::string title;
  std::string product_vector;  // where its vector came from (AudienceResult::product_vector)
  int64_t audience = 0;        // customers at or above min_probability (before the rules)
  int64_t letters = 0;         // letters planned that name it
  double expected_buyers = 0;  // Σ probability over those letters
  std::string skipped;         // why it has no audience ("" if it has one)
};

struct CampaignReport {
  std::string campaign_id;
  bool dry_run = false;
  bool resumed = false;  // the campaign was planned by an earlier run
  std::string sink;      // LetterSink::Describe(), "" without one
  int64_t model_version = 0;
  double horizon_days = 0;
  std::vector<CampaignProductReport> products;  // by expected buyers, best first
  int64_t customers_scored = 0;                 // Σ over products of customers ranked
  int64_t letters_planned = 0;
  int64_t letters_sent = 0;             // by this run
  int64_t letters_sent_before = 0;      // by earlier runs of the campaign
  int64_t letters_pending = 0;          // still pending after this run (a dry run: as before it)
  int64_t letters_failed = 0;           // delivery errors worth retrying in this run (left pending)
  int64_t letters_rejected = 0;         // refused for good by the server in this run (not retried)
  int64_t letters_rejected_before = 0;  // refused in earlier runs of the campaign
  // Pending letters removed from the ledger at delivery: their address (an account's address
  // changed since the plan) got this campaign's letter through another account in this run (one
  // letter per address, as the plan's same_address rule). A dry run counts the letters it would
  // drop and leaves them pending.
  int64_t letters_dropped = 0;
  // Pending letters not delivered: the customer opted out or lost a valid address since the
  // plan, or was forgotten, or their letter cannot be built (see the file comment).
  int64_t letters_skipped = 0;
  std::map<std::string, int64_t> suppressed;  // rule → count (see the file comment)
  double expected_buyers = 0;                 // Σ probability over the planned letters
  std::vector<std::string> errors;            // the first delivery errors (at most 10)
  std::vector<std::string> notes;             // remarks on the run (e.g. placeholder tokens)
  double plan_seconds = 0;
  double deliver_seconds = 0;
};

// The report as JSON: campaign_id, dry_run, resumed, sink, model_version, horizon_days,
// products [{product, title, product_vector, audience, letters, expected_buyers, skipped}],
// top_products (ids, up to 5), customers_scored, letters_planned, letters_sent,
// letters_sent_before, letters_pending, letters_failed, letters_rejected,
// letters_rejected_before, letters_dropped, letters_skipped,
// suppressed {rule: n}, expected_buyers, errors, notes, plan_seconds, deliver_seconds.
nlohmann::json CampaignReportJson(const CampaignReport& report);

// Plans (or resumes) and delivers a campaign; see the file comment. `sink` may be null only with
// dry_run. InvalidArgument (naming the field) for bad options, an unknown product or a template
// that does not render; FailedPrecondition if the model has no audience calibration, or for a
// read-only store outside dry_run (a dry run on one works; without a stored campaign secret its
// previews carry placeholder tokens); Corruption for an unreadable recorded plan; the store's
// errors. Delivery errors do not fail the run: the letter stays pending and is counted in
// letters_failed (after 10 failures in a row the run stops delivering, e.g. when the SMTP
// server is down).
Result<CampaignReport> RunCampaign(ServingEngine& engine, const CampaignOptions& options,
                                   const LetterOptions& letter, const LetterTemplates& templates,
                                   LetterSink* sink, const CampaignHooks& hooks = {});

}  // namespace affinity
