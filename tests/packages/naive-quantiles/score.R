# A test package of kind r-script: each series' empirical sales quantiles over its last `weeks`
# weeks, the same for every week ahead. Base R only; the tests edit it to break it on purpose.

load_models <- function(model_dir) {
  list(levels = c(0.05, 0.25, 0.5, 0.75, 0.95), weeks = 13L)
}

recent_quantiles <- function(history, origin, models) {
  recent <- history[history$week > origin - models$weeks, ]
  by_series <- split(recent$sales, paste(recent$sku, recent$store))
  t(vapply(by_series, quantile, numeric(length(models$levels)), probs = models$levels, names = FALSE))
}

score <- function(models, history, future, origin) {
  levels <- recent_quantiles(history, origin, models)
  rows <- future[, c("sku", "store", "week")]
  out <- cbind(rows, levels[paste(rows$sku, rows$store), , drop = FALSE])
  names(out) <- c("sku", "store", "week", "q5", "q25", "q50", "q75", "q95")
  rownames(out) <- NULL
  out
}
