"""The results data model: one record per check."""
