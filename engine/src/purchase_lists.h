#pragma once
// By customer: the distinct products each one bought (ascending) and the times of their purchases
// (ascending, one per purchase event), the two lists in one allocation per customer. An audience
// reads both lists of ~2,000 scattered customers per request; kept as two std::vectors they were
// two 24-byte headers in two arrays and two more allocations away, four or five cache misses a
// customer. Here a customer is one 8-byte pointer and one record: header, products, then times
// (a customer with a few purchases fits in one 64-byte line). Engine-internal.
//
// Not thread-safe: the serving caches guard it with their mutex (readers shared, writers
// exclusive), as they did the vectors it replaces.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <vector>

#include "affinity/types.h"

namespace affinity {

class PurchaseLists {
 public:
  // Customers with an entry: ids below size(). Others read as having bought nothing.
  size_t size() const { return records_.size(); }
  // Makes ids below `customers` valid (new ones empty); a smaller size drops the customers above.
  void Resize(size_t customers) { records_.resize(customers); }

  // The customer's distinct products, ascending; empty when none or when customer >= size().
  std::span<const uint32_t> Products(uint32_t customer) const {
    const Header* h = customer < records_.size() ? records_[customer].get() : nullptr;
    if (!h) return {};
    return {reinterpret_cast<const uint32_t*>(h + 1), h->products};
  }
  // The times of the customer's purchases, ascending, one per purchase event.
  std::span<const UnixSeconds> Times(uint32_t customer) const {
    const Header* h = customer < records_.size() ? records_[customer].get() : nullptr;
    if (!h) return {};
    return {TimesOf(h), h->times};
  }

  // For prefetching: where the customer's pointer is (customer < size()), and where their record
  // starts (null when they have none). Reading either changes nothing.
  const void* Slot(uint32_t customer) const { return &records_[customer]; }
  const void* Record(uint32_t customer) const { return records_[customer].get(); }

  // Replaces the customer's lists, growing size() when needed. `products` must be ascending and
  // distinct, `times` ascending (not checked). Both empty frees the record.
  void Set(uint32_t customer, std::span<const uint32_t> products,
           std::span<const UnixSeconds> times) {
    if (customer >= records_.size()) records_.resize(static_cast<size_t>(customer) + 1);
    if (products.empty() && times.empty()) {
      records_[customer].reset();
      return;
    }
    Owned r = Allocate(products.size(), times.size());
    std::copy(products.begin(), products.end(), ProductsOf(r.get()));
    std::copy(times.begin(), times.end(), TimesOf(r.get()));
    records_[customer] = std::move(r);
  }

  // One purchase of `product` at `time`: the product joins the products unless already there,
  // the time joins the times (after any equal ones). Grows size() when needed.
  void Add(uint32_t customer, uint32_t product, UnixSeconds time) {
    if (customer >= records_.size()) records_.resize(static_cast<size_t>(customer) + 1);
    const std::span<const uint32_t> products = Products(customer);
    const std::span<const UnixSeconds> times = Times(customer);
    const auto p = std::lower_bound(products.begin(), products.end(), product);
    const bool new_product = p == products.end() || *p != product;
    const auto t = std::upper_bound(times.begin(), times.end(), time);
    Owned r = Allocate(products.size() + (new_product ? 1 : 0), times.size() + 1);
    uint32_t* out_products = std::copy(products.begin(), p, ProductsOf(r.get()));
    if (new_product) *out_products++ = product;
    std::copy(p, products.end(), out_products);
    UnixSeconds* out_times = std::copy(times.begin(), t, TimesOf(r.get()));
    *out_times++ = time;
    std::copy(t, times.end(), out_times);
    records_[customer] = std::move(r);
  }

  // Forgets the customer's lists (their id stays valid, empty).
  void Clear(uint32_t customer) {
    if (customer < records_.size()) records_[customer].reset();
  }

 private:
  // A record: this header, `products` uint32s, padding to 8 bytes, `times` int64s.
  struct Header {
    uint32_t products;
    uint32_t times;
  };
  struct Free {
    void operator()(Header* h) const { ::operator delete(h); }
  };
  using Owned = std::unique_ptr<Header, Free>;

  static size_t TimesOffset(size_t products) {
    return sizeof(Header) + (products * sizeof(uint32_t) + 7) / 8 * 8;
  }
  static uint32_t* ProductsOf(Header* h) { return reinterpret_cast<uint32_t*>(h + 1); }
  static UnixSeconds* TimesOf(Header* h) {
    return reinterpret_cast<UnixSeconds*>(reinterpret_cast<std::byte*>(h) +
                                          TimesOffset(h->products));
  }
  static const UnixSeconds* TimesOf(const Header* h) {
    return reinterpret_cast<const UnixSeconds*>(reinterpret_cast<const std::byte*>(h) +
                                                TimesOffset(h->products));
  }
  // Storage from operator new (aligned for int64), whose uint32 and int64 elements begin their
  // lifetime implicitly (C++20 implicit object creation).
  static Owned Allocate(size_t products, size_t times) {
    void* storage = ::operator new(TimesOffset(products) + times * sizeof(UnixSeconds));
    Owned r(static_cast<Header*>(storage));
    r->products = static_cast<uint32_t>(products);
    r->times = static_cast<uint32_t>(times);
    return r;
  }

  std::vector<Owned> records_;
};

}  // namespace affinity
