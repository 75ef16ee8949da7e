"""One widget per hand-built tab of the panel; each signals the panel and never imports it."""
