#include <pgbridge/transport/banded_receiver.hpp>

namespace pgbridge::transport {

BandedReceiver::BandedReceiver(std::vector<std::string> consumer_tags, std::size_t max_held_bytes,
                               Read read)
    : tags_(std::move(consumer_tags)),
      max_held_bytes_(max_held_bytes),
      read_(std::move(read)),
      bands_(std::max<std::size_t>(1, tags_.size())) {}

std::size_t BandedReceiver::band_of(const Delivery& delivery) const {
    for (std::size_t i = 0; i < tags_.size(); ++i) {
        if (tags_[i] == delivery.consumer_tag) {
            return i;
        }
    }
    return bands_.size() - 1;
}

void BandedReceiver::hold(Delivery delivery) {
    held_bytes_ += delivery.body.size();
    const std::size_t band = band_of(delivery);
    bands_[band].push_back(std::move(delivery));
}

std::size_t BandedReceiver::held() const {
    std::size_t n = 0;
    for (const auto& band : bands_) {
        n += band.size();
    }
    return n;
}

std::optional<Delivery> BandedReceiver::receive(std::chrono::milliseconds wait) {
    // Take in what has arrived, so that the choice below sees every band.
    while (held_bytes_ < max_held_bytes_) {
        auto delivery = read_(std::chrono::milliseconds(0));
        if (!delivery) {
            break;
        }
        hold(std::move(*delivery));
    }
    if (held() == 0) {
        auto delivery = read_(wait);
        if (!delivery) {
            return std::nullopt;
        }
        hold(std::move(*delivery));
    }
    for (auto& band : bands_) {
        if (!band.empty()) {
            Delivery next = std::move(band.front());
            band.pop_front();
            held_bytes_ -= next.body.size();
            return next;
        }
    }
    return std::nullopt;  // not reached: something is held
}

}  // namespace pgbridge::transport
