"""The shared kernel: errors, settings, tracking, code version, labels, tag keys."""
