"""What drives the server machine: the syscall executor that the simulated and the real backends share.

This package imports neither simpy nor the kernel, so realnet can use it (tests/test_layers.py).
"""
