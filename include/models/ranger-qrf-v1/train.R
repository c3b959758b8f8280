# Trains the forest on one product's history: training rows at every 2nd origin week from week 20,
# each series' next 13 weeks as targets. Called by `retail-scoring train-package`.
suppressPackageStartupMessages(library(ranger))

train <- function(history, model_dir) {
  source(file.path(model_dir, "features.R"), local = TRUE)
  origins <- seq(20L, max(history$week) - 13L, by = 2L)
  rows <- bind_rows(lapply(origins, function(origin) {
    ahead <- history[history$week > origin & history$week <= origin + 13L, ]
    forecast_rows(series_state(history[history$week <= origin, ]), ahead, origin)
  }))
  forest <- ranger(
    x = rows[FEATURES], y = log(rows$sales), quantreg = TRUE, num.trees = 60, min.node.size = 200,
    seed = 42, num.threads = 2
  )
  saveRDS(forest, file.path(model_dir, "forest.rds"))
  list(rows = nrow(rows), origins = length(origins))
}
