"""One module per Processing algorithm; each is thin: parameters → core → outputs."""
