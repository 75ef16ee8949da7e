"""The inference engine every task shares: tiles, blocks, executors, journal, stitching."""
