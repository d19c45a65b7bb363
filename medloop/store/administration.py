"""administration tables and repository (filled in by the issue that owns them)."""
