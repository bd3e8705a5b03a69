"""Bulk importer for the Biteral customers API."""

__version__ = "0.1.0"
