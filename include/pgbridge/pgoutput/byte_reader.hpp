#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pgbridge::pgoutput {

// Reads the big-endian integers and strings of PostgreSQL's wire formats from a byte span.
// Every read checks the bounds first and throws Error(ErrorKind::Protocol) naming what was
// being read and at which offset, so malformed input can never read past the buffer.
class ByteReader {
  public:
    explicit ByteReader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
    explicit ByteReader(std::string_view bytes)
        : bytes_(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()) {}

    std::uint8_t u8(std::string_view what);
    std::uint16_t u16(std::string_view what);
    std::uint32_t u32(std::string_view what);
    std::uint64_t u64(std::string_view what);
    std::int16_t i16(std::string_view what) { return static_cast<std::int16_t>(u16(what)); }
    std::int32_t i32(std::string_view what) { return static_cast<std::int32_t>(u32(what)); }
    std::int64_t i64(std::string_view what) { return static_cast<std::int64_t>(u64(what)); }
    // A NUL-terminated string.
    std::string cstring(std::string_view what);
    // n raw bytes.
    std::string bytes(std::size_t n, std::string_view what);

    std::size_t offset() const { return offset_; }
    std::size_t remaining() const { return bytes_.size() - offset_; }
    bool at_end() const { return offset_ == bytes_.size(); }
    // Throws unless every byte was consumed: trailing bytes mean a misread message.
    void expect_end(std::string_view message_name) const;

  private:
    void need(std::size_t n, std::string_view what) const;

    std::span<const std::uint8_t> bytes_;
    std::size_t offset_ = 0;
};

}  // namespace pgbridge::pgoutput
