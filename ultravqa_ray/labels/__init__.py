"""Human ratings in: labelling through Label Studio, imports from any tool, rater quality control."""
