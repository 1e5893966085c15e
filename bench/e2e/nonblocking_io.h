// The two non-blocking socket steps bench/e2e's event loops share (webhook_loop.h, the host's
// server, and paced_send.cpp, the client).
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <string>

namespace fb_bench {

// Sends out[*sent..] until done or the socket would block, advancing *sent. False: the connection
// failed.
inline bool send_pending(int fd, const std::string& out, size_t* sent) {
  while (*sent < out.size()) {
    ssize_t n = ::send(fd, out.data() + *sent, out.size() - *sent, MSG_NOSIGNAL);
    if (n > 0) {
      *sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  return true;
}

// Appends what the socket has to *in until it would block. True: the peer closed the connection or
// it failed.
inline bool receive_available(int fd, std::string* in) {
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r > 0) {
      in->append(buf, static_cast<size_t>(r));
      continue;
    }
    return r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
}

}  // namespace fb_bench
