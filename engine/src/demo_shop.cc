// Synthetic shop generator. See affinity/demo_shop.h for the file formats.
//
// Generation runs in independent random streams (catalog, products, customers, orders, lines),
// each a std::mt19937_64 seeded from options.seed, so that changing one phase does not reshuffle
// the others. Every distribution is implemented below on the engine's raw 64-bit output.
//
// The model, phase by phase:
//   Catalog    A hand-written tree: department / category / leaf. Each leaf has nouns, a base
//              price and an optional season of its own; each category has materials or colours;
//              each department has adjectives and brands (brand price tiers are drawn).
//   Products   Every leaf gets at least one product (when there are enough), the rest go to leaves
//              in proportion to a drawn leaf size. Title = adjective + material + noun; price is
//              log-normal around base price x brand tier, rounded to a .99/.49 price point;
//              popularity within a leaf is Zipf(1) over a random rank. A new_product_share of
//              products launch inside the period, the rest in the three years before it.
//   Customers  Signup mostly before the period (20% inside it), 25% churn at a uniform time in
//              their active window, activity ~ Gamma(1.5, orders_per_customer / 1.5), tastes
//              over 2-4 leaves of 1-2 departments with Dirichlet(1.5) weights.
//   Orders     For customer c active on [lo, hi), orders form an inhomogeneous Poisson process
//              with intensity  lambda_c(t) = activity_c * r(t_local) / integral(r over period),
//              where r(t) = month factor * weekday factor * Black Friday boost * hour-of-day
//              profile, evaluated in the customer's local time (country offset, no DST).
//              Sampled exactly: N ~ Poisson(integral of lambda_c over [lo, hi)), then each order
//              time by inverting the cumulative intensity W(t) (piecewise linear per hour).
//   Lines      Orders are processed in time order. Each of 1-5 lines re-buys an earlier product
//              of the customer with repeat_probability (picked from their earlier lines, so
//              favourites recur), else discovers: picks a leaf (10% uniform, 90% by taste weight
//              x leaf season factor) and a product of that leaf by popularity among products
//              launched by then, redrawing (up to 8 times) products the customer already owns.
//              So re-buys come from the repeat knob, not from chance. Quantity is mostly 1;
//              8% of lines (40% over the Black Friday weekend) are discounted 10-30%. The channel
//              is the customer's favourite 70% of the time; stores take orders 9:00-20:00 local.
#include "affinity/demo_shop.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <numbers>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace affinity {
namespace {

constexpr int64_t kSecondsPerHour = 3600;
constexpr int64_t kSecondsPerDay = 86400;
constexpr int64_t kPrehistorySeconds = 3 * 365 * kSecondsPerDay;  // catalog/customer history
constexpr int64_t kMaxStartTime = 4102444800;                     // 2100-01-01T00:00:00Z
constexpr double kMaxExpectedOrders = 1e8;                        // customers * orders_per_customer
constexpr double kActivityShape = 1.5;  // gamma shape of customer activity
constexpr double kTasteConcentration = 1.5;
constexpr double kNoiseLeafProbability = 0.10;
constexpr double kNewCustomerShare = 0.20;
constexpr double kChurnProbability = 0.25;
constexpr int kTasteUnits = 10000;  // taste weights are multiples of 1e-4

// ---------------------------------------------------------------------------------------------
// Random numbers: portable distributions on top of mt19937_64's raw output.

// SplitMix64 finaliser: turns (seed, stream) into well-mixed, distinct engine seeds.
uint64_t MixSeed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : engine_(MixSeed(seed ^ MixSeed(stream))) {}

  // Uniform in [0, 1): the top 53 bits of one draw scaled by 2^-53.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }

  // Uniform integer in [0, n), n > 0, without modulo bias: draws below 2^64 mod n are rejected.
  uint64_t Below(uint64_t n) {
    const uint64_t reject_below = (0 - n) % n;
    uint64_t x;
    do {
      x = engine_();
    } while (x < reject_below);
    return x % n;
  }

  // Uniform integer in [lo, hi), lo < hi.
  int64_t Range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo)));
  }

  bool Bernoulli(double p) { return Uniform() < p; }

  // Standard normal by Box-Muller: with u1 in (0, 1], u2 in [0, 1),
  //   z0 = sqrt(-2 ln u1) cos(2 pi u2),  z1 = sqrt(-2 ln u1) sin(2 pi u2)
  // are independent N(0, 1); z1 is kept for the next call.
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - Uniform();
    const double u2 = Uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * std::numbers::pi * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

  // exp(N(mu, sigma^2)).
  double LogNormal(double mu, double sigma) { return std::exp(mu + sigma * Normal()); }

  // Gamma(shape, scale) by Marsaglia-Tsang (2000). For shape >= 1, with d = shape - 1/3,
  // c = 1 / sqrt(9 d), x ~ N(0, 1), v = (1 + c x)^3, accept d v when
  //   u < 1 - 0.0331 x^4   or   ln u < x^2 / 2 + d (1 - v + ln v).
  // For shape < 1: Gamma(shape) = Gamma(shape + 1) * u^(1 / shape).
  double Gamma(double shape, double scale) {
    if (shape < 1.0) {
      const double u = 1.0 - Uniform();
      return Gamma(shape + 1.0, scale) * std::pow(u, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    while (true) {
      const double x = Normal();
      double v = 1.0 + c * x;
      if (v <= 0.0) continue;
      v = v * v * v;
      const double u = 1.0 - Uniform();
      if (u < 1.0 - 0.0331 * (x * x) * (x * x)) return d * v * scale;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v * scale;
    }
  }

  // Poisson(mean) by Knuth's product of uniforms: the number of uniforms whose running product
  // stays above e^-mean. Large means are split into chunks of at most 16 (a sum of independent
  // Poissons is Poisson), which keeps e^-chunk far from underflow.
  int64_t Poisson(double mean) {
    int64_t total = 0;
    while (mean > 0.0) {
      const double chunk = std::min(mean, 16.0);
      mean -= chunk;
      const double limit = std::exp(-chunk);
      double product = Uniform();
      while (product > limit) {
        ++total;
        product *= Uniform();
      }
    }
    return total;
  }

  // Index i with probability weights[i] / sum(weights); weights >= 0 with a positive sum.
  template <typename Container>
  size_t Categorical(const Container& weights) {
    double total = 0.0;
    for (double w : weights) total += w;
    double u = Uniform() * total;
    size_t last_positive = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i] <= 0.0) continue;
      last_positive = i;
      if (u < weights[i]) return i;
      u -= weights[i];
    }
    return last_positive;  // rounding left u >= the final weight
  }

  // Fisher-Yates shuffle.
  template <typename T>
  void Shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) {
      std::swap(items[i - 1], items[Below(i)]);
    }
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Random stream ids, one per generation phase.
enum Stream : uint64_t {
  kCatalogStream = 1,
  kProductStream = 2,
  kCustomerStream = 3,
  kOrderStream = 4,
  kLineStream = 5,
};

// ---------------------------------------------------------------------------------------------
// Calendar (proleptic Gregorian, UTC), after Howard Hinnant's date algorithms.

struct CivilDate {
  int64_t year;
  int month;  // 1-12
  int day;    // 1-31
};

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

CivilDate CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (month <= 2), month, day};
}

int64_t DaysFromCivil(int64_t year, int month, int day) {
  year -= month <= 2;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t yoe = year - era * 400;
  const int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// 0 = Sunday ... 6 = Saturday. 1970-01-01 was a Thursday.
int Weekday(int64_t days) { return static_cast<int>(days + 4 - FloorDiv(days + 4, 7) * 7); }

// "2025-03-04T10:22:00Z".
std::string FormatTime(int64_t unix_seconds) {
  const int64_t days = FloorDiv(unix_seconds, kSecondsPerDay);
  const int64_t secs = unix_seconds - days * kSecondsPerDay;
  const CivilDate date = CivilFromDays(days);
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "%04lld-%02d-%02dT%02lld:%02lld:%02lldZ",
                static_cast<long long>(date.year), date.month, date.day,
                static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                static_cast<long long>(secs % 60));
  return buffer;
}

// True on Black Friday (the day after the fourth Thursday of November) through Cyber Monday.
bool IsBlackFridayWeekend(int64_t days) {
  const CivilDate date = CivilFromDays(days);
  if (date.month != 11 && date.month != 12) return false;
  const int64_t nov1 = DaysFromCivil(date.year, 11, 1);
  const int first_thursday = 1 + (4 - Weekday(nov1) + 7) % 7;
  const int64_t black_friday = nov1 + first_thursday - 1 + 21 + 1;
  return days >= black_friday && days <= black_friday + 3;
}

// Position in the year in months, 0 at Jan 1 and 12 at the next Jan 1.
double MonthPosition(int64_t days) {
  const CivilDate date = CivilFromDays(days);
  const int64_t jan1 = DaysFromCivil(date.year, 1, 1);
  const int64_t next_jan1 = DaysFromCivil(date.year + 1, 1, 1);
  return 12.0 * static_cast<double>(days - jan1) / static_cast<double>(next_jan1 - jan1);
}

// Relative shopping intensity of a (local) calendar day; Feb-Mar is about 0.9, Nov-Dec about 2.
double DayFactor(int64_t days) {
  // Post-holiday lull, spring, summer bump, autumn, holiday peak.
  static constexpr std::array<double, 12> kMonth = {0.85, 0.90, 0.95, 1.00, 1.05, 1.20,
                                                    1.30, 1.20, 0.95, 1.05, 1.80, 2.10};
  // Sunday-heavy online shopping.
  static constexpr std::array<double, 7> kWeekday = {1.15, 1.05, 0.95, 0.95, 0.95, 0.90, 1.05};
  const CivilDate date = CivilFromDays(days);
  double factor = kMonth[date.month - 1] * kWeekday[Weekday(days)];
  if (IsBlackFridayWeekend(days)) factor *= 1.6;
  if (date.month == 12 && date.day == 25) factor *= 0.4;
  return factor;
}

// Relative intensity of each local hour of the day (evening peak, quiet nights).
constexpr std::array<double, 24> kHourProfile = {0.60, 0.35, 0.20, 0.15, 0.15, 0.25, 0.50, 0.90,
                                                 1.20, 1.40, 1.50, 1.50, 1.70, 1.60, 1.40, 1.40,
                                                 1.50, 1.70, 2.00, 2.30, 2.50, 2.30, 1.70, 1.10};
constexpr int kStoreOpenHour = 9;    // local, inclusive
constexpr int kStoreCloseHour = 20;  // local, exclusive

// ---------------------------------------------------------------------------------------------
// Static shop data.

struct LeafDef {
  std::string_view name;
  double base_price;    // typical price, currency units
  int peak_month;       // 1-12: the month this leaf sells best; 0: no season of its own
  double season_swing;  // relative amplitude of the leaf's season, in [0, 1)
  std::vector<std::string_view> nouns;
};

struct CategoryDef {
  std::string_view name;
  std::vector<std::string_view> materials;  // materials, colours or variants for titles
  std::vector<LeafDef> leaves;
};

struct DepartmentDef {
  std::string_view name;
  double popularity;  // relative share of customers and catalog
  std::vector<std::string_view> adjectives;
  std::vector<std::string_view> brands;
  std::vector<CategoryDef> categories;
};

const std::vector<DepartmentDef>& Departments() {
  static const auto* const kDepartments = new std::vector<DepartmentDef>{
      {"Home",
       1.0,
       {"Speckled", "Minimal", "Rustic", "Nordic", "Classic", "Handmade", "Modern", "Vintage"},
       {"Hearthly", "Oak & Ember", "Casa Nova", "Nestwell", "Lumen Row", "Kettle Lane"},
       {{"Kitchen",
         {"Stoneware", "Porcelain", "Enamel", "Glass", "Bamboo", "Cast Iron", "Copper"},
         {{"Mugs", 14, 0, 0.0, {"Mug", "Cup", "Tumbler"}},
          {"Cookware", 55, 11, 0.3, {"Skillet", "Saucepan", "Dutch Oven", "Wok"}},
          {"Cutting Boards", 28, 0, 0.0, {"Cutting Board", "Serving Board", "Chopping Block"}}}},
        {"Bedding",
         {"Linen", "Cotton", "Sateen", "Flannel", "Sage", "Charcoal", "Oatmeal"},
         {{"Duvet Covers", 75, 10, 0.2, {"Duvet Cover", "Quilt Cover"}},
          {"Pillows", 30, 0, 0.0, {"Pillow", "Cushion", "Bolster"}},
          {"Throws", 45, 12, 0.5, {"Throw", "Blanket"}}}},
        {"Lighting",
         {"Brass", "Ceramic", "Rattan", "Matte Black", "Frosted Glass", "Oak"},
         {{"Table Lamps", 60, 11, 0.3, {"Table Lamp", "Desk Lamp"}},
          {"Pendants", 85, 0, 0.0, {"Pendant Light", "Ceiling Shade"}},
          {"Light Bulbs", 8, 11, 0.3, {"LED Bulb", "Filament Bulb", "Globe Bulb"}}}},
        {"Storage",
         {"Wicker", "Canvas", "Oak", "Steel", "Felt", "Seagrass"},
         {{"Baskets", 25, 0, 0.0, {"Basket", "Hamper", "Storage Bin"}},
          {"Shelves", 70, 1, 0.3, {"Wall Shelf", "Bookcase", "Ladder Shelf"}}}}}},
      {"Fashion",
       1.3,
       {"Classic", "Relaxed", "Slim", "Everyday", "Vintage", "Oversized", "Essential", "Tailored"},
       {"Northbound", "Maison Lark", "Thread & Co", "Urban Fable", "Kinfolk Supply", "Veloura"},
       {{"Shoes",
         {"Leather", "Suede", "Canvas", "Mesh", "Knit", "White", "Black"},
         {{"Sneakers", 80, 0, 0.0, {"Sneakers", "Trainers", "Low Tops"}},
          {"Boots", 120, 11, 0.6, {"Chelsea Boots", "Ankle Boots", "Hiking Boots"}},
          {"Sandals", 40, 7, 0.8, {"Sandals", "Slides", "Espadrilles"}}}},
        {"Tops",
         {"Cotton", "Linen", "Merino", "Jersey", "Flannel", "Navy", "Olive"},
         {{"T-Shirts", 20, 7, 0.4, {"T-Shirt", "Tee", "Tank Top"}},
          {"Shirts", 45, 0, 0.0, {"Shirt", "Oxford Shirt", "Blouse"}},
          {"Sweaters", 65, 12, 0.6, {"Sweater", "Cardigan", "Hoodie"}}}},
        {"Bottoms",
         {"Denim", "Chino", "Corduroy", "Twill", "Linen", "Indigo"},
         {{"Jeans", 70, 0, 0.0, {"Jeans", "Slim Jeans", "Straight Jeans"}},
          {"Shorts", 35, 7, 0.8, {"Shorts", "Cargo Shorts", "Swim Shorts"}}}},
        {"Accessories",
         {"Leather", "Wool", "Silk", "Canvas", "Cashmere", "Camel"},
         {{"Scarves", 30, 12, 0.7, {"Scarf", "Wrap", "Snood"}},
          {"Bags", 60, 0, 0.0, {"Tote Bag", "Backpack", "Crossbody Bag"}},
          {"Hats", 22, 1, 0.4, {"Beanie", "Cap", "Bucket Hat"}}}}}},
      {"Garden",
       0.7,
       {"Heavy-Duty", "Compact", "Ergonomic", "Classic", "Professional", "Weatherproof",
        "Easy-Grip"},
       {"Greenhand", "Rootstock", "Fernwood", "Bloom & Bough", "Terrastead"},
       {{"Tools",
         {"Steel", "Carbon Steel", "Ash Wood", "Aluminium", "Stainless"},
         {{"Pruners", 25, 4, 0.6, {"Pruner", "Secateurs", "Loppers"}},
          {"Trowels", 15, 4, 0.6, {"Trowel", "Hand Fork", "Transplanter"}},
          {"Rakes", 30, 10, 0.5, {"Rake", "Leaf Rake", "Hoe"}}}},
        {"Plants",
         {"Heirloom", "Organic", "Dwarf", "Variegated", "Hardy", "Scented"},
         {{"Seeds",
           4,
           3,
           0.8,
           {"Tomato Seeds", "Basil Seeds", "Sunflower Seeds", "Wildflower Mix"}},
          {"Flower Bulbs", 9, 9, 0.8, {"Tulip Bulbs", "Daffodil Bulbs", "Allium Bulbs"}},
          {"Shrubs", 25, 4, 0.7, {"Lavender", "Hydrangea", "Boxwood"}}}},
        {"Outdoor Living",
         {"Teak", "Acacia", "Rattan", "Aluminium", "Recycled"},
         {{"Seating", 150, 5, 0.7, {"Garden Chair", "Bench", "Lounger"}},
          {"Planters", 40, 4, 0.6, {"Planter", "Window Box", "Raised Bed"}},
          {"Garden Lights", 30, 6, 0.5, {"Solar Lantern", "String Lights", "Path Light"}}}},
        {"Watering",
         {"Brass", "Rubber", "Galvanised", "Expandable"},
         {{"Hoses", 35, 6, 0.7, {"Hose", "Soaker Hose", "Hose Reel"}},
          {"Watering Cans", 20, 6, 0.6, {"Watering Can", "Pump Sprayer", "Mister"}}}}}},
      {"Toys",
       0.8,
       {"Rainbow", "Little", "Giant", "Adventure", "Clever", "Happy", "Wonder"},
       {"Tiny Tinker", "Playfield", "Wobblewood", "Brightbox", "Moonbeam Toys"},
       {{"Building",
         {"Wooden", "Magnetic", "Bamboo", "Classic"},
         {{"Blocks", 30, 12, 0.6, {"Block Set", "Stacking Blocks", "Tile Set"}},
          {"Construction Kits", 45, 12, 0.7, {"Construction Kit", "Marble Run", "Bridge Kit"}}}},
        {"Games",
         {"Family", "Travel", "Deluxe", "Pocket", "Party"},
         {{"Board Games", 32, 12, 0.6, {"Board Game", "Strategy Game", "Quiz Game"}},
          {"Puzzles", 18, 1, 0.5, {"Jigsaw Puzzle", "3D Puzzle", "Brain Teaser"}},
          {"Card Games", 12, 12, 0.4, {"Card Game", "Trivia Deck", "Memory Game"}}}},
        {"Plush",
         {"Cuddly", "Knitted", "Velvet", "Organic Cotton"},
         {{"Teddy Bears", 25, 12, 0.6, {"Teddy Bear", "Bear Cub"}},
          {"Plush Animals", 20, 12, 0.5, {"Fox", "Bunny", "Whale", "Dinosaur"}}}},
        {"Outdoor Play",
         {"Wooden", "Inflatable", "Foam", "Steel"},
         {{"Balls", 12, 7, 0.6, {"Football", "Beach Ball", "Bouncy Ball"}},
          {"Ride-Ons", 90, 12, 0.5, {"Balance Bike", "Scooter", "Wagon"}}}}}},
      {"Beauty",
       0.9,
       {"Gentle", "Daily", "Radiant", "Pure", "Nourishing", "Calming", "Glow"},
       {"Dewdrop", "Maison Aura", "Botanica Lab", "Velvet Moss", "Clearwater"},
       {{"Skincare",
         {"Hydrating", "Vitamin C", "Hyaluronic", "Retinol", "Aloe", "Niacinamide"},
         {{"Moisturisers", 28, 1, 0.3, {"Moisturiser", "Day Cream", "Night Cream"}},
          {"Serums", 35, 0, 0.0, {"Serum", "Face Oil", "Essence"}},
          {"Cleansers", 18, 0, 0.0, {"Cleanser", "Cleansing Balm", "Micellar Water"}}}},
        {"Makeup",
         {"Matte", "Satin", "Velvet", "Sheer", "Longwear"},
         {{"Lipstick", 22, 12, 0.3, {"Lipstick", "Lip Tint", "Lip Gloss"}},
          {"Mascara", 20, 0, 0.0, {"Mascara", "Brow Gel"}},
          {"Foundation", 32, 0, 0.0, {"Foundation", "Concealer", "Tinted Balm"}}}},
        {"Haircare",
         {"Argan", "Coconut", "Keratin", "Tea Tree", "Rosemary"},
         {{"Shampoo", 14, 0, 0.0, {"Shampoo", "Conditioner", "Hair Mask"}},
          {"Styling", 19, 0, 0.0, {"Hair Oil", "Styling Cream", "Texture Spray"}}}},
        {"Fragrance",
         {"Citrus", "Amber", "Vetiver", "Rose", "Sandalwood", "Fig"},
         {{"Perfume", 70, 12, 0.6, {"Eau de Parfum", "Eau de Toilette"}},
          {"Candles", 32, 12, 0.5, {"Scented Candle", "Reed Diffuser"}}}}}},
      {"Sports",
       0.8,
       {"Pro", "Trail", "Endurance", "Performance", "Essential", "Summit", "Active"},
       {"Stridewell", "Peakform", "Ironbark", "Kinetic Co", "Northridge"},
       {{"Fitness",
         {"Rubber", "Neoprene", "Cork", "Foam", "Steel"},
         {{"Yoga Mats", 35, 1, 0.6, {"Yoga Mat", "Yoga Block", "Yoga Strap"}},
          {"Weights", 45, 1, 0.7, {"Dumbbell", "Kettlebell", "Weight Plate"}},
          {"Resistance", 15, 1, 0.6, {"Resistance Band", "Jump Rope", "Ab Wheel"}}}},
        {"Running",
         {"Reflective", "Breathable", "Lightweight", "Thermal", "Seamless"},
         {{"Running Shoes", 110, 3, 0.4, {"Running Shoes", "Trail Shoes", "Racing Flats"}},
          {"Running Apparel", 55, 4, 0.3, {"Running Jacket", "Running Tights", "Running Vest"}}}},
        {"Cycling",
         {"Carbon", "Aluminium", "Merino", "Gel", "Hi-Vis"},
         {{"Helmets", 80, 5, 0.5, {"Helmet", "Commuter Helmet", "Road Helmet"}},
          {"Bike Accessories", 25, 5, 0.4, {"Bike Light", "Bottle Cage", "Saddle Bag"}}}},
        {"Camping",
         {"Ripstop", "Down", "Titanium", "Waxed Canvas", "Ultralight"},
         {{"Tents", 180, 6, 0.8, {"Tent", "Bivvy", "Tarp"}},
          {"Sleeping Bags", 95, 6, 0.7, {"Sleeping Bag", "Sleeping Pad", "Camp Pillow"}},
          {"Camp Kitchen", 50, 6, 0.6, {"Camp Stove", "Cook Set", "Mug Set"}}}}}},
  };
  return *kDepartments;
}

struct CountryDef {
  std::string_view code;  // ISO 3166-1 alpha-2
  double share;
  int utc_offset_hours;  // standard time; DST is ignored
};

constexpr std::array<CountryDef, 10> kCountries = {{{"US", 0.34, -5},
                                                    {"GB", 0.14, 0},
                                                    {"DE", 0.12, 1},
                                                    {"FR", 0.09, 1},
                                                    {"CA", 0.07, -5},
                                                    {"NL", 0.06, 1},
                                                    {"ES", 0.05, 1},
                                                    {"IT", 0.05, 1},
                                                    {"AU", 0.04, 10},
                                                    {"SE", 0.04, 1}}};

constexpr std::array<std::string_view, 48> kFirstNames = {
    "Olivia", "Liam",  "Emma",  "Noah",   "Amelia", "Oliver", "Sophia", "Elijah", "Mia",   "Lucas",
    "Isla",   "Mateo", "Chloe", "Leo",    "Freya",  "Hugo",   "Ava",    "Finn",   "Lena",  "Jonas",
    "Clara",  "Louis", "Alice", "Arthur", "Sofia",  "Marco",  "Lucia",  "Pablo",  "Elena", "Daniel",
    "Hannah", "Felix", "Grace", "Ethan",  "Maya",   "Oscar",  "Nora",   "Samuel", "Zoe",   "Theo",
    "Ella",   "Max",   "Ruby",  "Adam",   "Ines",   "Luca",   "Aria",   "Jack"};

constexpr std::array<std::string_view, 48> kLastNames = {
    "Smith",  "Johnson",  "Brown",    "Taylor",  "Wilson",  "Davies",  "Evans",   "Thomas",
    "Miller", "Garcia",   "Martinez", "Lopez",   "Muller",  "Schmidt", "Weber",   "Fischer",
    "Martin", "Bernard",  "Dubois",   "Moreau",  "Rossi",   "Russo",   "Ferrari", "Bianchi",
    "Jansen", "de Vries", "Bakker",   "Visser",  "Nilsson", "Larsson", "Berg",    "Lindqvist",
    "Clarke", "Walker",   "Wright",   "Hughes",  "Green",   "Hall",    "Wood",    "Turner",
    "Murphy", "Kelly",    "Campbell", "Stewart", "Cooper",  "Ward",    "Morris",  "Reed"};

enum Channel : int { kWeb = 0, kApp = 1, kStore = 2 };
constexpr std::array<std::string_view, 3> kChannelNames = {"web", "app", "store"};
constexpr std::array<double, 3> kChannelMix = {0.50, 0.35, 0.15};

// Lines per order: 1..5.
constexpr std::array<double, 5> kLinesPerOrder = {0.45, 0.25, 0.15, 0.10, 0.05};

// Quantity per line: 1..6, mostly 1, sometimes 2, rarely more (6 = a half-dozen pack).
constexpr std::array<double, 6> kQuantity = {0.82, 0.11, 0.035, 0.015, 0.008, 0.012};

// ---------------------------------------------------------------------------------------------
// Generated shop.

struct Leaf {
  std::string path;  // "Home/Kitchen/Mugs"
  int department = 0;
  const DepartmentDef* dept_def = nullptr;
  const CategoryDef* category_def = nullptr;
  const LeafDef* def = nullptr;
  // Products of this leaf sorted by created_at, with their launch times and the prefix sums of
  // their popularity: cum_popularity[k] = sum of the first k popularities.
  std::vector<int> products;
  std::vector<int64_t> launch_times;
  std::vector<double> cum_popularity;
};

struct Product {
  std::string title;
  int leaf = 0;
  int brand = 0;
  int64_t price_cents = 0;
  int64_t created_at = 0;
  double popularity = 0.0;
};

struct TasteEntry {
  int leaf;
  int units;  // weight in 1e-4
};

struct Customer {
  std::string first_name;
  std::string last_name;
  int country = 0;
  int64_t created_at = 0;
  int64_t churn_at = 0;  // first second with no more orders (period end if no churn)
  double activity = 0.0;
  int favourite_channel = kWeb;
  std::vector<TasteEntry> tastes;
};

struct Order {
  int64_t time;
  int customer;
  int seq;  // per-customer tie-breaker
  int channel;
};

struct Line {
  int product;
  int quantity;
  int64_t unit_cents;
};

std::string FormatCents(int64_t cents) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%lld.%02lld", static_cast<long long>(cents / 100),
                static_cast<long long>(cents % 100));
  return buffer;
}

std::string FormatId(char prefix, int64_t number, int width) {
  std::string digits = std::to_string(number);
  if (static_cast<int>(digits.size()) < width) digits.insert(0, width - digits.size(), '0');
  return prefix + digits;
}

int IdWidth(int64_t count, int min_width) {
  int width = 1;
  for (int64_t n = count; n >= 10; n /= 10) ++width;
  return std::max(width, min_width);
}

std::string Lower(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ' ') continue;
    out += static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  }
  return out;
}

// Appends one CSV field, quoting it (RFC 4180) only if it holds a comma, quote or line break.
void AppendField(std::string& out, std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += value;
    return;
  }
  out += '"';
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

// Appends `fields` as one CSV row.
void AppendRow(std::string& out, std::initializer_list<std::string_view> fields) {
  bool first = true;
  for (std::string_view field : fields) {
    if (!first) out += ',';
    first = false;
    AppendField(out, field);
  }
  out += '\n';
}

Status WriteFile(const std::filesystem::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::IOError("cannot open " + path.string() + " for writing");
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return Status::IOError("cannot write " + path.string());
  return Status::Ok();
}

class ShopGenerator {
 public:
  explicit ShopGenerator(const DemoShopOptions& options)
      : options_(options),
        period_start_(options.start_time),
        period_end_(options.start_time + int64_t{options.days} * kSecondsPerDay) {}

  void Generate() {
    BuildCatalog();
    GenerateProducts();
    GenerateCustomers();
    BuildIntensity();
    GenerateOrders();
    GenerateLines();
  }

  std::string CustomersCsv() const;
  std::string ProductsCsv() const;
  std::string PurchasesCsv() const;
  std::string TastesCsv() const;

  DemoShopSummary Summary() const {
    DemoShopSummary summary;
    summary.customers = static_cast<int>(customers_.size());
    summary.products = static_cast<int>(products_.size());
    summary.orders = kept_orders_;
    summary.purchase_lines = static_cast<int>(lines_.size());
    summary.categories = static_cast<int>(leaves_.size());
    return summary;
  }

 private:
  void BuildCatalog();
  void GenerateProducts();
  void GenerateCustomers();
  void BuildIntensity();
  void GenerateOrders();
  void GenerateLines();

  // Cumulative local-time intensity W at local time `t` (seconds): the integral of r from the
  // start of the intensity table to t, with r constant within each hour.
  double CumulativeIntensity(int64_t local_t) const;
  // Inverse of CumulativeIntensity: the local second at which W reaches `w`.
  int64_t InverseIntensity(double w) const;
  // Picks a product of `leaf` launched at or before `t` by popularity; -1 if none.
  int PickProductInLeaf(int leaf, int64_t t, Rng& rng) const;
  // Picks a product for a discovery line of `customer` at time `t`: from a uniformly random
  // leaf if `noise`, else from a leaf drawn by `taste_weights` (parallel to customer.tastes).
  // Falls back to a random leaf with launched products; -1 only if nothing is launched yet.
  int PickTasteProduct(const Customer& customer, const std::vector<double>& taste_weights,
                       bool noise, int64_t t, Rng& rng) const;

  const DemoShopOptions options_;
  const int64_t period_start_;
  const int64_t period_end_;

  std::vector<Leaf> leaves_;
  std::vector<std::vector<double>> brand_tiers_;       // [department][brand] price factor
  std::vector<std::vector<double>> brand_popularity_;  // [department][brand]
  std::vector<int> leaves_by_first_launch_;            // leaves with products, by first launch
  std::vector<int64_t> first_launch_;                  // matching first launch times
  std::vector<Product> products_;
  std::vector<Customer> customers_;

  int64_t intensity_origin_ = 0;       // local second of table entry 0 (hour aligned)
  std::vector<double> hour_rate_;      // r per local hour
  std::vector<double> cum_intensity_;  // W at each hour boundary, size hour_rate_ + 1

  std::vector<Order> orders_;
  int kept_orders_ = 0;
  // Lines grouped by order: lines_[line_begin_[i] .. line_begin_[i + 1]) belong to orders_[i].
  std::vector<Line> lines_;
  std::vector<size_t> line_begin_;
};

void ShopGenerator::BuildCatalog() {
  Rng rng(options_.seed, kCatalogStream);
  const auto& departments = Departments();
  for (size_t d = 0; d < departments.size(); ++d) {
    const DepartmentDef& dept = departments[d];
    std::vector<double> tiers;
    std::vector<double> popularity;
    for (size_t b = 0; b < dept.brands.size(); ++b) {
      tiers.push_back(rng.LogNormal(0.0, 0.25));
      popularity.push_back(1.0 / std::pow(static_cast<double>(b + 1), 0.8));
    }
    brand_tiers_.push_back(std::move(tiers));
    brand_popularity_.push_back(std::move(popularity));
    for (const CategoryDef& category : dept.categories) {
      for (const LeafDef& leaf_def : category.leaves) {
        Leaf leaf;
        leaf.path = std::string(dept.name) + "/" + std::string(category.name) + "/" +
                    std::string(leaf_def.name);
        leaf.department = static_cast<int>(d);
        leaf.dept_def = &dept;
        leaf.category_def = &category;
        leaf.def = &leaf_def;
        leaves_.push_back(std::move(leaf));
      }
    }
  }
}

void ShopGenerator::GenerateProducts() {
  Rng rng(options_.seed, kProductStream);
  const int n = options_.products;
  const int num_leaves = static_cast<int>(leaves_.size());

  // Leaf sizes: department popularity shared over its leaves, with log-normal jitter.
  std::vector<int> leaves_in_department(Departments().size(), 0);
  for (const Leaf& leaf : leaves_) ++leaves_in_department[leaf.department];
  std::vector<double> leaf_size(leaves_.size());
  for (int l = 0; l < num_leaves; ++l) {
    const Leaf& leaf = leaves_[l];
    leaf_size[l] =
        leaf.dept_def->popularity / leaves_in_department[leaf.department] * rng.LogNormal(0.0, 0.4);
  }

  // Every leaf gets one product (in random order) while products last; the rest by leaf size.
  std::vector<int> leaf_order(leaves_.size());
  for (int l = 0; l < num_leaves; ++l) leaf_order[l] = l;
  rng.Shuffle(leaf_order);
  std::vector<Product> products(n);
  for (int i = 0; i < n; ++i) {
    products[i].leaf =
        i < num_leaves ? leaf_order[i] : static_cast<int>(rng.Categorical(leaf_size));
  }

  // Launch dates: a random new_product_share of products launch inside the period.
  const int num_new = static_cast<int>(n * options_.new_product_share);
  std::vector<int> launch_order(n);
  for (int i = 0; i < n; ++i) launch_order[i] = i;
  rng.Shuffle(launch_order);
  for (int k = 0; k < n; ++k) {
    Product& product = products[launch_order[k]];
    product.created_at = k < num_new ? rng.Range(period_start_, period_end_)
                                     : rng.Range(period_start_ - kPrehistorySeconds, period_start_);
  }
  // Catalog ids follow launch order: P0001 is the oldest product.
  std::stable_sort(products.begin(), products.end(),
                   [](const Product& a, const Product& b) { return a.created_at < b.created_at; });

  std::unordered_map<std::string, int> title_count;
  for (Product& product : products) {
    const Leaf& leaf = leaves_[product.leaf];
    const DepartmentDef& dept = *leaf.dept_def;
    product.brand = static_cast<int>(rng.Categorical(brand_popularity_[leaf.department]));

    // Title: adjective + material/colour + noun; a few draws to avoid duplicates, then "No. k".
    std::string title;
    for (int attempt = 0; attempt < 8; ++attempt) {
      // One draw per statement: the operands of + are unsequenced, so draws inside one
      // expression would come out in a compiler-dependent order.
      const std::string_view adjective = dept.adjectives[rng.Below(dept.adjectives.size())];
      const auto& materials = leaf.category_def->materials;
      const std::string_view material = materials[rng.Below(materials.size())];
      const std::string_view noun = leaf.def->nouns[rng.Below(leaf.def->nouns.size())];
      title = std::string(adjective) + " " + std::string(material) + " " + std::string(noun);
      if (title_count.find(title) == title_count.end()) break;
    }
    const int count = ++title_count[title];
    if (count > 1) title += " No. " + std::to_string(count);
    product.title = std::move(title);

    // Price: log-normal around base x brand tier, then a .99 / .49 price point (or x5.00 - 0.01
    // above 100).
    const double price = leaf.def->base_price * brand_tiers_[leaf.department][product.brand] *
                         rng.LogNormal(0.0, 0.3);
    int64_t cents;
    if (price < 100.0) {
      cents = static_cast<int64_t>(std::floor(price)) * 100 + (rng.Bernoulli(0.25) ? 49 : 99);
    } else {
      cents = static_cast<int64_t>(std::llround(price / 5.0)) * 500 - 1;
    }
    product.price_cents = std::max<int64_t>(cents, 99);
  }

  // Popularity: Zipf(1) over a random rank within each leaf.
  std::vector<std::vector<int>> by_leaf(leaves_.size());
  for (int i = 0; i < n; ++i) by_leaf[products[i].leaf].push_back(i);
  for (int l = 0; l < num_leaves; ++l) {
    std::vector<int> ranked = by_leaf[l];
    rng.Shuffle(ranked);
    for (size_t r = 0; r < ranked.size(); ++r) {
      products[ranked[r]].popularity = 1.0 / static_cast<double>(r + 1);
    }
    // by_leaf[l] is already in launch order (products are sorted by created_at).
    Leaf& leaf = leaves_[l];
    leaf.products = by_leaf[l];
    leaf.cum_popularity.assign(1, 0.0);
    for (int p : leaf.products) {
      leaf.launch_times.push_back(products[p].created_at);
      leaf.cum_popularity.push_back(leaf.cum_popularity.back() + products[p].popularity);
    }
    if (!leaf.products.empty()) leaves_by_first_launch_.push_back(l);
  }
  std::stable_sort(
      leaves_by_first_launch_.begin(), leaves_by_first_launch_.end(),
      [this](int a, int b) { return leaves_[a].launch_times[0] < leaves_[b].launch_times[0]; });
  for (int l : leaves_by_first_launch_) first_launch_.push_back(leaves_[l].launch_times[0]);
  products_ = std::move(products);
}

void ShopGenerator::GenerateCustomers() {
  Rng rng(options_.seed, kCustomerStream);
  const int n = options_.customers;
  const auto& departments = Departments();

  std::vector<int64_t> signups(n);
  for (int64_t& signup : signups) {
    signup = rng.Bernoulli(kNewCustomerShare)
                 ? rng.Range(period_start_, period_end_)
                 : rng.Range(period_start_ - kPrehistorySeconds, period_start_);
  }
  std::sort(signups.begin(), signups.end());  // customer ids follow signup order

  std::vector<double> department_popularity;
  for (const DepartmentDef& dept : departments) department_popularity.push_back(dept.popularity);
  std::vector<double> country_share;
  for (const CountryDef& country : kCountries) country_share.push_back(country.share);

  customers_.resize(n);
  for (int i = 0; i < n; ++i) {
    Customer& c = customers_[i];
    c.created_at = signups[i];
    c.first_name = std::string(kFirstNames[rng.Below(kFirstNames.size())]);
    c.last_name = std::string(kLastNames[rng.Below(kLastNames.size())]);
    c.country = static_cast<int>(rng.Categorical(country_share));
    c.favourite_channel = static_cast<int>(rng.Categorical(kChannelMix));
    c.activity = rng.Gamma(kActivityShape, options_.orders_per_customer / kActivityShape);
    const int64_t active_from = std::max(c.created_at, period_start_);
    c.churn_at =
        rng.Bernoulli(kChurnProbability) ? rng.Range(active_from, period_end_) : period_end_;

    // Tastes: 1 department (70%) or 2, then 2-4 distinct leaves from them.
    std::vector<double> dept_weights = department_popularity;
    const int first_dept = static_cast<int>(rng.Categorical(dept_weights));
    std::vector<int> candidate_leaves;
    dept_weights[first_dept] = 0.0;
    const int second_dept =
        rng.Bernoulli(0.3) ? static_cast<int>(rng.Categorical(dept_weights)) : -1;
    for (int l = 0; l < static_cast<int>(leaves_.size()); ++l) {
      if (leaves_[l].department == first_dept || leaves_[l].department == second_dept) {
        candidate_leaves.push_back(l);
      }
    }
    rng.Shuffle(candidate_leaves);
    const int num_tastes = 2 + static_cast<int>(rng.Below(3));
    candidate_leaves.resize(std::min<size_t>(num_tastes, candidate_leaves.size()));

    // Dirichlet weights, rounded to units of 1e-4 that sum to exactly kTasteUnits (largest
    // remainder), each at least one unit.
    std::vector<double> raw(candidate_leaves.size());
    double total = 0.0;
    for (double& w : raw) total += (w = rng.Gamma(kTasteConcentration, 1.0));
    std::vector<int> units(raw.size());
    std::vector<std::pair<double, int>> remainders;
    int assigned = 0;
    for (size_t k = 0; k < raw.size(); ++k) {
      const double exact = raw[k] / total * kTasteUnits;
      units[k] = static_cast<int>(std::floor(exact));
      assigned += units[k];
      remainders.emplace_back(-(exact - units[k]), static_cast<int>(k));
    }
    std::sort(remainders.begin(), remainders.end());
    for (int k = 0; assigned < kTasteUnits; ++k, ++assigned) ++units[remainders[k].second];
    for (int& u : units) {
      if (u > 0) continue;
      u = 1;
      --*std::max_element(units.begin(), units.end());
    }
    for (size_t k = 0; k < units.size(); ++k) c.tastes.push_back({candidate_leaves[k], units[k]});
    std::sort(c.tastes.begin(), c.tastes.end(), [](const TasteEntry& a, const TasteEntry& b) {
      return a.units != b.units ? a.units > b.units : a.leaf < b.leaf;
    });
  }
}

void ShopGenerator::BuildIntensity() {
  // Local time runs from (period start - 1 day) to (period end + 1 day), which covers every UTC
  // offset in kCountries; the origin is aligned to a local midnight.
  intensity_origin_ = FloorDiv(period_start_, kSecondsPerDay) * kSecondsPerDay - kSecondsPerDay;
  const int64_t table_end =
      (FloorDiv(period_end_ - 1, kSecondsPerDay) + 2) * kSecondsPerDay;  // exclusive
  const int64_t hours = (table_end - intensity_origin_) / kSecondsPerHour;
  hour_rate_.resize(hours);
  cum_intensity_.assign(hours + 1, 0.0);
  for (int64_t h = 0; h < hours; ++h) {
    const int64_t local = intensity_origin_ + h * kSecondsPerHour;
    const int64_t day = FloorDiv(local, kSecondsPerDay);
    const int hour_of_day = static_cast<int>((local - day * kSecondsPerDay) / kSecondsPerHour);
    hour_rate_[h] = DayFactor(day) * kHourProfile[hour_of_day];
    cum_intensity_[h + 1] = cum_intensity_[h] + hour_rate_[h];
  }
}

double ShopGenerator::CumulativeIntensity(int64_t local_t) const {
  const int64_t offset = local_t - intensity_origin_;
  const int64_t h =
      std::clamp<int64_t>(offset / kSecondsPerHour, 0, static_cast<int64_t>(hour_rate_.size()) - 1);
  const double within = static_cast<double>(offset - h * kSecondsPerHour) / kSecondsPerHour;
  return cum_intensity_[h] + hour_rate_[h] * within;
}

int64_t ShopGenerator::InverseIntensity(double w) const {
  auto it = std::upper_bound(cum_intensity_.begin(), cum_intensity_.end(), w);
  int64_t h = static_cast<int64_t>(it - cum_intensity_.begin()) - 1;
  h = std::clamp<int64_t>(h, 0, static_cast<int64_t>(hour_rate_.size()) - 1);
  const double within = (w - cum_intensity_[h]) / hour_rate_[h];
  return intensity_origin_ + h * kSecondsPerHour +
         static_cast<int64_t>(std::floor(within * kSecondsPerHour));
}

void ShopGenerator::GenerateOrders() {
  Rng rng(options_.seed, kOrderStream);
  for (int i = 0; i < static_cast<int>(customers_.size()); ++i) {
    const Customer& c = customers_[i];
    const int64_t lo = std::max(c.created_at, period_start_);
    const int64_t hi = c.churn_at;
    if (lo >= hi) continue;
    const int64_t offset = int64_t{kCountries[c.country].utc_offset_hours} * kSecondsPerHour;
    // Expected orders = activity * (intensity over the active window) / (intensity over period).
    const double w_period_start = CumulativeIntensity(period_start_ + offset);
    const double w_period = CumulativeIntensity(period_end_ + offset) - w_period_start;
    const double w_lo = CumulativeIntensity(lo + offset);
    const double w_hi = CumulativeIntensity(hi + offset);
    const int64_t count = rng.Poisson(c.activity * (w_hi - w_lo) / w_period);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t local = InverseIntensity(rng.Uniform(w_lo, w_hi));
      const int64_t t = std::clamp(local - offset, lo, hi - 1);
      // Channel: the customer's favourite 70% of the time; stores only while open.
      int channel =
          rng.Bernoulli(0.7) ? c.favourite_channel : static_cast<int>(rng.Categorical(kChannelMix));
      const int64_t local_t = t + offset;
      const int local_hour = static_cast<int>(
          (local_t - FloorDiv(local_t, kSecondsPerDay) * kSecondsPerDay) / kSecondsPerHour);
      if (channel == kStore && (local_hour < kStoreOpenHour || local_hour >= kStoreCloseHour)) {
        channel = kWeb;
      }
      orders_.push_back({t, i, static_cast<int>(k), channel});
    }
  }
  std::sort(orders_.begin(), orders_.end(), [](const Order& a, const Order& b) {
    if (a.time != b.time) return a.time < b.time;
    if (a.customer != b.customer) return a.customer < b.customer;
    return a.seq < b.seq;
  });
}

int ShopGenerator::PickProductInLeaf(int leaf_index, int64_t t, Rng& rng) const {
  const Leaf& leaf = leaves_[leaf_index];
  const size_t launched =
      static_cast<size_t>(std::upper_bound(leaf.launch_times.begin(), leaf.launch_times.end(), t) -
                          leaf.launch_times.begin());
  if (launched == 0) return -1;
  const double u = rng.Uniform() * leaf.cum_popularity[launched];
  size_t k = static_cast<size_t>(std::upper_bound(leaf.cum_popularity.begin() + 1,
                                                  leaf.cum_popularity.begin() + launched + 1, u) -
                                 (leaf.cum_popularity.begin() + 1));
  k = std::min(k, launched - 1);
  return leaf.products[k];
}

int ShopGenerator::PickTasteProduct(const Customer& customer,
                                    const std::vector<double>& taste_weights, bool noise, int64_t t,
                                    Rng& rng) const {
  int leaf;
  if (noise) {
    leaf = static_cast<int>(rng.Below(leaves_.size()));
  } else {
    leaf = customer.tastes[rng.Categorical(taste_weights)].leaf;
  }
  int product = PickProductInLeaf(leaf, t, rng);
  if (product >= 0) return product;
  // Nothing launched in that leaf yet: a random leaf that has a launched product. One always
  // exists because new_product_share < 1 leaves at least one product launched before the period.
  const size_t open = static_cast<size_t>(
      std::upper_bound(first_launch_.begin(), first_launch_.end(), t) - first_launch_.begin());
  if (open == 0) return -1;
  return PickProductInLeaf(leaves_by_first_launch_[rng.Below(open)], t, rng);
}

void ShopGenerator::GenerateLines() {
  Rng rng(options_.seed, kLineStream);
  std::vector<std::vector<int>> history(customers_.size());       // earlier lines' products
  std::vector<std::vector<int>> owned_sorted(customers_.size());  // same, distinct and sorted
  std::vector<double> taste_weights;
  std::vector<Line> basket;
  std::vector<Order> kept;
  line_begin_.push_back(0);
  for (const Order& order : orders_) {
    const Customer& c = customers_[order.customer];
    const int64_t day = FloorDiv(order.time, kSecondsPerDay);
    // Taste weights modulated by each leaf's own season:
    //   w_leaf = taste_leaf * (1 + swing * cos(2 pi (month_position - peak_centre) / 12)).
    const double month_position = MonthPosition(day);
    taste_weights.clear();
    for (const TasteEntry& taste : c.tastes) {
      const LeafDef& def = *leaves_[taste.leaf].def;
      double season = 1.0;
      if (def.peak_month > 0) {
        season += def.season_swing * std::cos(2.0 * std::numbers::pi *
                                              (month_position - (def.peak_month - 0.5)) / 12.0);
      }
      taste_weights.push_back(taste.units * season);
    }
    const bool black_friday = IsBlackFridayWeekend(day);
    const double discount_probability = black_friday ? 0.4 : 0.08;

    std::vector<int>& past = history[order.customer];
    std::vector<int>& owned = owned_sorted[order.customer];
    const int wanted = 1 + static_cast<int>(rng.Categorical(kLinesPerOrder));
    basket.clear();
    auto in_basket = [&basket](int product) {
      return std::any_of(basket.begin(), basket.end(),
                         [product](const Line& line) { return line.product == product; });
    };
    for (int l = 0; l < wanted; ++l) {
      int product = -1;
      if (!past.empty() && rng.Bernoulli(options_.repeat_probability)) {
        // A repeat line: an earlier line of this customer, so favourites come back more often.
        for (int attempt = 0; attempt < 4 && product < 0; ++attempt) {
          const int candidate = past[rng.Below(past.size())];
          if (!in_basket(candidate)) product = candidate;
        }
      }
      if (product < 0) {
        // A discovery line: something the customer has not bought yet, if a few draws find one
        // (a customer who owns most of their favourite leaves ends up re-buying anyway).
        // The noise decision is made once per line, so that customers who own most of their
        // leaves re-buy there rather than drift to random leaves.
        const bool noise = rng.Bernoulli(kNoiseLeafProbability);
        int fallback = -1;
        for (int attempt = 0; attempt < 8 && product < 0; ++attempt) {
          const int candidate = PickTasteProduct(c, taste_weights, noise, order.time, rng);
          if (candidate < 0 || in_basket(candidate)) continue;
          if (!std::binary_search(owned.begin(), owned.end(), candidate)) {
            product = candidate;
          } else if (fallback < 0) {
            fallback = candidate;
          }
        }
        if (product < 0) product = fallback;
      }
      if (product < 0) continue;  // kept colliding with the basket: a shorter order
      const int quantity = 1 + static_cast<int>(rng.Categorical(kQuantity));
      int64_t unit_cents = products_[product].price_cents;
      if (rng.Bernoulli(discount_probability)) {
        const int64_t percent = 10 + 5 * static_cast<int64_t>(rng.Below(5));  // 10..30
        unit_cents = (unit_cents * (100 - percent) + 50) / 100;
      }
      basket.push_back({product, quantity, unit_cents});
    }
    if (basket.empty()) continue;
    for (const Line& line : basket) {
      past.push_back(line.product);
      const auto at = std::lower_bound(owned.begin(), owned.end(), line.product);
      if (at == owned.end() || *at != line.product) owned.insert(at, line.product);
      lines_.push_back(line);
    }
    line_begin_.push_back(lines_.size());
    kept.push_back(order);
  }
  orders_ = std::move(kept);
  kept_orders_ = static_cast<int>(orders_.size());
}

std::string ShopGenerator::CustomersCsv() const {
  std::string out;
  out.reserve(customers_.size() * 80);
  AppendRow(out, {"customer_id", "email", "name", "country", "created_at"});
  const int width = IdWidth(static_cast<int64_t>(customers_.size()), 5);
  for (size_t i = 0; i < customers_.size(); ++i) {
    const Customer& c = customers_[i];
    const std::string email = Lower(c.first_name) + "." + Lower(c.last_name) + "." +
                              std::to_string(i + 1) + "@example.com";
    AppendRow(out, {FormatId('C', static_cast<int64_t>(i + 1), width), email,
                    c.first_name + " " + c.last_name, kCountries[c.country].code,
                    FormatTime(c.created_at)});
  }
  return out;
}

std::string ShopGenerator::ProductsCsv() const {
  std::string out;
  out.reserve(products_.size() * 100);
  AppendRow(out, {"product_id", "title", "category", "brand", "price", "created_at"});
  const int width = IdWidth(static_cast<int64_t>(products_.size()), 4);
  for (size_t i = 0; i < products_.size(); ++i) {
    const Product& p = products_[i];
    const Leaf& leaf = leaves_[p.leaf];
    AppendRow(out, {FormatId('P', static_cast<int64_t>(i + 1), width), p.title, leaf.path,
                    leaf.dept_def->brands[p.brand], FormatCents(p.price_cents),
                    FormatTime(p.created_at)});
  }
  return out;
}

std::string ShopGenerator::PurchasesCsv() const {
  std::string out;
  out.reserve(lines_.size() * 64);
  AppendRow(out, {"order_id", "line", "customer_id", "product_id", "quantity", "unit_price", "time",
                  "channel"});
  const int order_width = IdWidth(static_cast<int64_t>(orders_.size()), 6);
  const int customer_width = IdWidth(static_cast<int64_t>(customers_.size()), 5);
  const int product_width = IdWidth(static_cast<int64_t>(products_.size()), 4);
  for (size_t o = 0; o < orders_.size(); ++o) {
    const Order& order = orders_[o];
    const std::string order_id = FormatId('O', static_cast<int64_t>(o + 1), order_width);
    const std::string customer_id = FormatId('C', order.customer + 1, customer_width);
    const std::string time = FormatTime(order.time);
    for (size_t k = line_begin_[o]; k < line_begin_[o + 1]; ++k) {
      const Line& line = lines_[k];
      AppendRow(out, {order_id, std::to_string(k - line_begin_[o] + 1), customer_id,
                      FormatId('P', line.product + 1, product_width), std::to_string(line.quantity),
                      FormatCents(line.unit_cents), time, kChannelNames[order.channel]});
    }
  }
  return out;
}

std::string ShopGenerator::TastesCsv() const {
  std::string out;
  out.reserve(customers_.size() * 120);
  AppendRow(out, {"customer_id", "category", "weight"});
  const int width = IdWidth(static_cast<int64_t>(customers_.size()), 5);
  for (size_t i = 0; i < customers_.size(); ++i) {
    const std::string customer_id = FormatId('C', static_cast<int64_t>(i + 1), width);
    for (const TasteEntry& taste : customers_[i].tastes) {
      char weight[16];
      std::snprintf(weight, sizeof(weight), "%d.%04d", taste.units / kTasteUnits,
                    taste.units % kTasteUnits);
      AppendRow(out, {customer_id, leaves_[taste.leaf].path, weight});
    }
  }
  return out;
}

std::string FormatNumber(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.10g", value);
  return buffer;
}

// InvalidArgument naming `field` unless lo <= value <= hi (NaN is out of range).
Status CheckRange(double value, double lo, double hi, const char* field) {
  if (value >= lo && value <= hi) return Status::Ok();
  return Status::InvalidArgument(std::string(field) + " must be in [" + FormatNumber(lo) + ", " +
                                     FormatNumber(hi) + "], got " + FormatNumber(value),
                                 field);
}

}  // namespace

Status DemoShopOptions::Validate() const {
  AFFINITY_RETURN_IF_ERROR(CheckRange(customers, 1, 10'000'000, "customers"));
  AFFINITY_RETURN_IF_ERROR(CheckRange(products, 1, 1'000'000, "products"));
  if (start_time < 0 || start_time >= kMaxStartTime) {
    return Status::InvalidArgument("start_time must be in [0, " + std::to_string(kMaxStartTime) +
                                       ") Unix seconds, got " + std::to_string(start_time),
                                   "start_time");
  }
  AFFINITY_RETURN_IF_ERROR(CheckRange(days, 1, 3660, "days"));
  AFFINITY_RETURN_IF_ERROR(CheckRange(orders_per_customer, 0, 1000, "orders_per_customer"));
  if (customers * orders_per_customer > kMaxExpectedOrders) {
    return Status::InvalidArgument(
        "customers * orders_per_customer must be at most 1e8 expected orders",
        "orders_per_customer");
  }
  AFFINITY_RETURN_IF_ERROR(CheckRange(repeat_probability, 0, 1, "repeat_probability"));
  if (!(new_product_share >= 0.0 && new_product_share < 1.0)) {
    return Status::InvalidArgument(
        "new_product_share must be in [0, 1), got " + std::to_string(new_product_share),
        "new_product_share");
  }
  return Status::Ok();
}

Result<DemoShopSummary> WriteDemoShop(const DemoShopOptions& options, const std::string& dir) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  if (dir.empty()) return Status::IOError("output directory path is empty");
  const std::filesystem::path root(dir);
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec || !std::filesystem::is_directory(root, ec)) {
    return Status::IOError("cannot create directory " + dir +
                           (ec ? ": " + ec.message() : std::string(": not a directory")));
  }

  ShopGenerator generator(options);
  generator.Generate();
  AFFINITY_RETURN_IF_ERROR(WriteFile(root / "customers.csv", generator.CustomersCsv()));
  AFFINITY_RETURN_IF_ERROR(WriteFile(root / "products.csv", generator.ProductsCsv()));
  AFFINITY_RETURN_IF_ERROR(WriteFile(root / "purchases.csv", generator.PurchasesCsv()));
  AFFINITY_RETURN_IF_ERROR(WriteFile(root / "tastes.csv", generator.TastesCsv()));
  return generator.Summary();
}

}  // namespace affinity
