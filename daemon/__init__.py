"""The daemon: service loop, jobs and triggers, systemd notify, HTTP endpoint, metrics, status."""
