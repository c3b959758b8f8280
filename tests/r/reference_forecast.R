# Independent R implementation of the features and forecast, written for the parity test only.
# It follows the reference architecture's create_features()/generate_forecast() with dplyr, on
# CSV input, and shares no code with the Python worker.
#
# Usage: Rscript reference_forecast.R HISTORY_CSV FUTUREX_CSV MODEL_DIR ORIGIN OUTPUT_CSV
suppressPackageStartupMessages({
  library(dplyr)
  library(gbm)
})

args <- commandArgs(trailingOnly = TRUE)
history <- read.csv(args[1])
futurex <- read.csv(args[2])
model_dir <- args[3]
origin <- as.integer(args[4])
output <- args[5]

quantiles <- c(0.05, 0.25, 0.5, 0.75, 0.95)
horizon <- 13

create_features <- function(dat, step) {
  dat %>%
    arrange(sku, store, week) %>%
    group_by(sku, store) %>%
    mutate(
      sales = log(sales),
      lag1 = lag(sales, n = 1 + step - 1),
      lag2 = lag(sales, n = 2 + step - 1),
      lag3 = lag(sales, n = 3 + step - 1),
      lag4 = lag(sales, n = 4 + step - 1),
      lag5 = lag(sales, n = 5 + step - 1),
      month_mean = (lag1 + lag2 + lag3 + lag4 + lag5) / 5,
      month_max = pmax(lag1, lag2, lag3, lag4, lag5),
      month_min = pmin(lag1, lag2, lag3, lag4, lag5)
    ) %>%
    group_by(sku, store, isna = is.na(lag1)) %>%
    mutate(level = ifelse(isna, NA, cummean(lag1))) %>%
    ungroup() %>%
    select(-sales, -isna) %>%
    filter(week == origin + step)
}

# History visible at the origin; every later week only contributes its planned features.
visible <- history %>% filter(week <= origin)
plans <- bind_rows(history %>% filter(week > origin) %>% select(-sales), futurex) %>%
  filter(week > origin, week <= origin + horizon)
dat <- bind_rows(visible, plans)
# The models know the orangeJuice brand as `sku`; keep the unique SKU id aside.
dat <- dat %>% rename(sku_id = sku, sku = base_sku)

forecasts <- lapply(1:horizon, function(step) {
  features <- create_features(dat, step)
  model_step <- min(step, 7)
  predictions <- sapply(quantiles, function(q) {
    model <- readRDS(file.path(model_dir, sprintf("gbm_t%d_q%d.rds", model_step, round(100 * q))))
    exp(predict(model, features, n.trees = model$n.trees))
  })
  predictions <- matrix(predictions, ncol = length(quantiles))
  sorted <- t(apply(predictions, 1, sort))
  colnames(sorted) <- c("q5", "q25", "q50", "q75", "q95")
  cbind(features %>% select(sku = sku_id, store, week), as.data.frame(sorted))
})

result <- do.call(rbind, forecasts) %>% arrange(sku, store, week)
write.csv(result, output, row.names = FALSE)
