#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/pgoutput/byte_reader.hpp>

namespace pgbridge::pgoutput {

void ByteReader::need(std::size_t n, std::string_view what) const {
    if (n > remaining()) {
        throw Error(
            ErrorKind::Protocol,
            fmt::format("truncated message: {} needs {} bytes, {} left", what, n, remaining()))
            .with("offset", std::to_string(offset_));
    }
}

std::uint8_t ByteReader::u8(std::string_view what) {
    need(1, what);
    return bytes_[offset_++];
}

std::uint16_t ByteReader::u16(std::string_view what) {
    need(2, what);
    const auto v = static_cast<std::uint16_t>((bytes_[offset_] << 8) | bytes_[offset_ + 1]);
    offset_ += 2;
    return v;
}

std::uint32_t ByteReader::u32(std::string_view what) {
    need(4, what);
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
        v = (v << 8) | bytes_[offset_++];
    }
    return v;
}

std::uint64_t ByteReader::u64(std::string_view what) {
    need(8, what);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
        v = (v << 8) | bytes_[offset_++];
    }
    return v;
}

std::string ByteReader::cstring(std::string_view what) {
    const auto begin = bytes_.begin() + static_cast<std::ptrdiff_t>(offset_);
    const auto nul = std::find(begin, bytes_.end(), std::uint8_t{0});
    if (nul == bytes_.end()) {
        throw Error(ErrorKind::Protocol,
                    fmt::format("truncated message: {} has no terminating NUL", what))
            .with("offset", std::to_string(offset_));
    }
    std::string out(reinterpret_cast<const char*>(&*begin), static_cast<std::size_t>(nul - begin));
    offset_ += out.size() + 1;
    return out;
}

std::string ByteReader::bytes(std::size_t n, std::string_view what) {
    need(n, what);
    std::string out(reinterpret_cast<const char*>(bytes_.data() + offset_), n);
    offset_ += n;
    return out;
}

void ByteReader::expect_end(std::string_view message_name) const {
    if (!at_end()) {
        throw Error(ErrorKind::Protocol, fmt::format("{} message has {} unexpected trailing bytes",
                                                     message_name, remaining()))
            .with("offset", std::to_string(offset_));
    }
}

}  // namespace pgbridge::pgoutput
