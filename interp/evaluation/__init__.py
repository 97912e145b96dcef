"""Stage 5: evaluation. Table 1 metrics (`metrics`), held-out sets and runs (`evaluate`), baselines, human labels
(`labeling`)."""
