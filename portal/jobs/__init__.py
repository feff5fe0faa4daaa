"""Background jobs: records, the runner and their pages."""
