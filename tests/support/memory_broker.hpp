#pragma once

// An in-memory broker for the consumer's rules: one queue with its retry and dead-letter
// queues, as RabbitMQ holds them for a bridge (docs/message-format.md, "Topology"), without a
// RabbitMQ. A retry copy comes back to the queue at once (its TTL is not waited for); a
// rejected delivery goes to the dead-letter queue unchanged, as the queue's
// x-dead-letter-exchange does.

#include <algorithm>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/transport/consumer.hpp>

namespace pgbridge::test {

class MemoryBroker {
  public:
    MemoryBroker(std::string bridge, std::string target)
        : bridge_(std::move(bridge)), target_(std::move(target)) {}

    void enqueue(std::string body, transport::MessageProperties properties = pgbridge_type()) {
        std::lock_guard lock(mutex_);
        transport::Delivery d;
        d.properties = std::move(properties);
        d.body = std::move(body);
        d.body_size = d.body.size();
        ready_.push_back(std::move(d));
    }

    static transport::MessageProperties pgbridge_type() {
        transport::MessageProperties p;
        p.type = std::string(transport::kMessageType);
        return p;
    }

    // The dead-letter queue as it holds messages: copies published to the dead-letter
    // exchange, and rejected deliveries.
    std::vector<transport::Delivery> dead() const {
        std::lock_guard lock(mutex_);
        return dead_;
    }
    std::size_t unsettled() const {
        std::lock_guard lock(mutex_);
        return ready_.size() + delivered_.size();
    }
    std::size_t acked() const {
        std::lock_guard lock(mutex_);
        return acked_;
    }
    std::size_t retried() const {
        std::lock_guard lock(mutex_);
        return retried_;
    }

    // A channel on this broker; deliveries it did not settle return to the queue when it is
    // destroyed, as a closed connection's do.
    std::unique_ptr<transport::ConsumerChannel> open() { return std::make_unique<Channel>(*this); }

  private:
    class Channel final : public transport::ConsumerChannel {
      public:
        explicit Channel(MemoryBroker& broker) : b_(broker) {}
        ~Channel() override {
            std::lock_guard lock(b_.mutex_);
            for (auto& d : b_.delivered_) {
                d.redelivered = true;
                b_.ready_.push_front(std::move(d));
            }
            b_.delivered_.clear();
        }

        std::optional<transport::Delivery> receive(std::chrono::milliseconds wait,
                                                   std::size_t max_body) override {
            {
                std::lock_guard lock(b_.mutex_);
                if (!b_.ready_.empty()) {
                    transport::Delivery d = std::move(b_.ready_.front());
                    b_.ready_.pop_front();
                    d.delivery_tag = ++b_.tags_;
                    b_.delivered_.push_back(d);
                    if (d.body.size() > max_body) {
                        d.body.resize(max_body);
                    }
                    return d;
                }
            }
            std::this_thread::sleep_for(std::min(wait, std::chrono::milliseconds(5)));
            return std::nullopt;
        }

        void ack(std::uint64_t tag) override {
            std::lock_guard lock(b_.mutex_);
            take(tag);
            ++b_.acked_;
        }

        void reject(std::uint64_t tag) override {
            std::lock_guard lock(b_.mutex_);
            b_.dead_.push_back(take(tag));
        }

        void publish(const transport::OutgoingMessage& m) override {
            std::lock_guard lock(b_.mutex_);
            transport::Delivery d;
            d.properties = m.properties;
            d.body = m.body;
            d.body_size = m.body.size();
            if (m.exchange.empty() && m.routing_key == names::retry_queue(b_.bridge_, b_.target_)) {
                ++b_.retried_;
                d.properties.expiration.reset();
                b_.ready_.push_back(std::move(d));
            } else if (m.exchange == names::dead_letter_exchange(b_.bridge_) &&
                       m.routing_key == b_.target_) {
                b_.dead_.push_back(std::move(d));
            } else {
                throw Error(ErrorKind::Broker, "unroutable in the memory broker")
                    .with("exchange", m.exchange)
                    .with("routing_key", m.routing_key);
            }
        }

      private:
        transport::Delivery take(std::uint64_t tag) {
            auto it =
                std::find_if(b_.delivered_.begin(), b_.delivered_.end(),
                             [&](const transport::Delivery& d) { return d.delivery_tag == tag; });
            if (it == b_.delivered_.end()) {
                throw Error(ErrorKind::Broker, "unknown delivery tag (settled twice?)");
            }
            transport::Delivery d = std::move(*it);
            b_.delivered_.erase(it);
            return d;
        }

        MemoryBroker& b_;
    };

    std::string bridge_;
    std::string target_;
    mutable std::mutex mutex_;
    std::deque<transport::Delivery> ready_;
    std::vector<transport::Delivery> delivered_;
    std::vector<transport::Delivery> dead_;
    std::uint64_t tags_ = 0;
    std::size_t acked_ = 0;
    std::size_t retried_ = 0;
};

}  // namespace pgbridge::test
