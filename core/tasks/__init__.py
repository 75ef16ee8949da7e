"""One module per Processing algorithm: each task's entry point."""
