// The one adapter from rocksdb::Status to affinity::Status.
#pragma once

#include <rocksdb/status.h>

#include "affinity/status.h"

namespace affinity {

inline Status FromRocksDb(const rocksdb::Status& s) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound(s.ToString());
  if (s.IsCorruption()) return Status::Corruption(s.ToString());
  if (s.IsInvalidArgument()) return Status::InvalidArgument(s.ToString());
  return Status::IOError(s.ToString());
}

}  // namespace affinity
