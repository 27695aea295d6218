"""simnet: a deterministic simulation of Linux TCP sockets and epoll for testing event-loop servers."""
