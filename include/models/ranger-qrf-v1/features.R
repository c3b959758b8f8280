# Features of the ranger quantile regression forest, computed in R with dplyr; the same code builds
# the training rows (train.R) and the scoring rows (score.R).
suppressPackageStartupMessages(library(dplyr))

PRICES <- paste0("price", 1:11)

# Per series, as of the last week of `history`: mean log sales, the last three weeks' log sales and
# the mean of the last four.
series_state <- function(history) {
  history %>%
    group_by(sku, store) %>%
    arrange(week, .by_group = TRUE) %>%
    summarise(
      level = mean(log(sales)),
      lag1 = log(sales[n()]),
      lag2 = log(sales[max(n() - 1, 1)]),
      lag3 = log(sales[max(n() - 2, 1)]),
      recent = mean(log(tail(sales, 4))),
      .groups = "drop"
    )
}

# One row per planned (series, week): the series' state, how far ahead the week is, and the week's
# plans: deal, feature, the SKU's own price and its price relative to the brands' mean price.
forecast_rows <- function(state, planned, origin) {
  prices <- as.matrix(planned[PRICES])
  planned %>%
    mutate(
      step = week - origin,
      own_price = prices[cbind(seq_len(nrow(planned)), base_sku)],
      relative_price = own_price / rowMeans(prices)
    ) %>%
    select(-all_of(PRICES)) %>%
    inner_join(state, by = c("sku", "store"))
}

FEATURES <- c("step", "base_sku", "deal", "feat", "own_price", "relative_price", "level", "lag1", "lag2", "lag3", "recent")
