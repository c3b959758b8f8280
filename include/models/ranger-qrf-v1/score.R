# Model package kind r-script: a ranger quantile regression forest over all 13 weeks ahead.
suppressPackageStartupMessages(library(ranger))

load_models <- function(model_dir) {
  source(file.path(model_dir, "features.R"), local = TRUE)
  list(forest = readRDS(file.path(model_dir, "forest.rds")), series_state = series_state, forecast_rows = forecast_rows,
       features = FEATURES)
}

score <- function(models, history, future, origin) {
  rows <- models$forecast_rows(models$series_state(history), future, origin)
  levels <- c(0.05, 0.25, 0.5, 0.75, 0.95)
  predicted <- predict(models$forest, rows[models$features], type = "quantiles", quantiles = levels, num.threads = 1)
  out <- data.frame(sku = rows$sku, store = rows$store, week = rows$week, exp(predicted$predictions))
  names(out) <- c("sku", "store", "week", "q5", "q25", "q50", "q75", "q95")
  out
}
