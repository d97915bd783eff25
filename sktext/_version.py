"""The version of sktext, in one place (read by the package and by model folders)."""

__version__ = "0.1.0"
