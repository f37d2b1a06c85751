"""FaceLens."""
