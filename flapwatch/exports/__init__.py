"""Records leaving flapwatch for print or other systems."""
