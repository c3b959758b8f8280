"""Model packages: the interface every kind implements (base), and the kinds."""
