"""Neural network modules (torch only)."""
