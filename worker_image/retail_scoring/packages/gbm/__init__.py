"""The gbm-lag-quantiles kind: its features, its R and compiled engines, its training."""
