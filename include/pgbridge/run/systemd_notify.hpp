#pragma once

#include <string_view>

namespace pgbridge::run {

// Tells systemd (Type=notify) how the daemon is doing: "READY=1", "STOPPING=1",
// "STATUS=...", "RELOADING=1". Does nothing when not started by systemd (no NOTIFY_SOCKET).
// The protocol is one datagram to the socket systemd names; no library needed.
void notify_systemd(std::string_view state) noexcept;

}  // namespace pgbridge::run
