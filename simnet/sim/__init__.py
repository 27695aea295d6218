"""Whole simulated runs: the server machine with seeded clients (run, workload), a run's pictures
(plot), the narrated demo, and the re-simulation of a recorded trace's clients (resim)."""
