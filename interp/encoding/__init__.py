"""Stage 3: activations to text. Thresholds (`thresholds`), binning and encoders (`encoders`), the reference set
(`reference`) and hand tuning (`tuning`)."""
