// flashjit's exception types. Every failure the library reports is a flashjit::Error; the subclass
// says whose fault it is: the caller's (UsageError), the compiler's (CompileError) or ours
// (InternalError). Included by every layer and by users.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace flashjit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Bad arguments from the caller: wrong shape, dtype, stride, value or an unsupported combination.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what) {}
};

// A feature that exists in the API but is not implemented yet on this backend.
class NotSupportedError : public UsageError {
 public:
  explicit NotSupportedError(const std::string& what) : UsageError(what) {}
};

// The kernel compiler failed; carries the kernel key and the compiler's log.
class CompileError : public Error {
 public:
  CompileError(const std::string& key, const std::string& log)
      : Error("flashjit: compiling kernel " + key + " failed:\n" + log), key_(key), log_(log) {}
  const std::string& key() const { return key_; }
  const std::string& log() const { return log_; }

 private:
  std::string key_;
  std::string log_;
};

// An invariant of flashjit itself was broken: a bug in flashjit.
class InternalError : public Error {
 public:
  explicit InternalError(const std::string& what) : Error(what) {}
};

namespace detail {

// Collects a message with operator<< and throws it on destruction. Only constructed on failure,
// so the message is built lazily.
template <typename E>
class Thrower {
 public:
  Thrower(const char* prefix) { stream_ << prefix; }
  template <typename T>
  Thrower& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }
  ~Thrower() noexcept(false) { throw E(stream_.str()); }

 private:
  std::ostringstream stream_;
};

}  // namespace detail
}  // namespace flashjit

// FLASHJIT_CHECK(cond) << "message": a UsageError when cond is false.
#define FLASHJIT_CHECK(cond) \
  if (cond) {                \
  } else                     \
    ::flashjit::detail::Thrower<::flashjit::UsageError>("flashjit: ")

// FLASHJIT_NOT_SUPPORTED() << "feature": a NotSupportedError, unconditionally.
#define FLASHJIT_NOT_SUPPORTED() \
  ::flashjit::detail::Thrower<::flashjit::NotSupportedError>("flashjit: not supported yet: ")

// FLASHJIT_ICHECK(cond) << "message": an InternalError when an invariant does not hold.
#define FLASHJIT_ICHECK(cond) \
  if (cond) {                 \
  } else                      \
    ::flashjit::detail::Thrower<::flashjit::InternalError>("flashjit internal error: ")
