"""The weekly restore verification (a Cloud Run job): see README.md."""
