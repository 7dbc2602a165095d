#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/transport/message.hpp>

namespace pgbridge::transport {

// Deliveries of several consumers on one connection, one per priority band (quorum queues
// have no x-max-priority), handed on highest band first: what has already arrived is taken in
// without waiting, so that a higher band's message that came after a lower band's goes first,
// as in a priority queue. What is held is bounded by `max_held_bytes` of bodies (beyond it,
// frames wait in the socket), so a backlog in a low band costs no more memory than one apply
// group.
class BandedReceiver {
  public:
    // Reads the connection's next delivery, waiting at most the given time (zero: only what
    // has arrived); nullopt when none came.
    using Read = std::function<std::optional<Delivery>(std::chrono::milliseconds)>;

    // `consumer_tags` name the bands' consumers, highest band first; a delivery to any other
    // consumer counts as the lowest band.
    BandedReceiver(std::vector<std::string> consumer_tags, std::size_t max_held_bytes, Read read);

    std::optional<Delivery> receive(std::chrono::milliseconds wait);

    std::size_t held() const;
    const std::vector<std::string>& consumer_tags() const { return tags_; }

  private:
    void hold(Delivery delivery);
    std::size_t band_of(const Delivery& delivery) const;

    std::vector<std::string> tags_;
    std::size_t max_held_bytes_;
    Read read_;
    std::vector<std::deque<Delivery>> bands_;
    std::size_t held_bytes_ = 0;
};

}  // namespace pgbridge::transport
