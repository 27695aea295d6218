"""The server state machine and its apps: pure, sans-IO, driven one syscall at a time."""
