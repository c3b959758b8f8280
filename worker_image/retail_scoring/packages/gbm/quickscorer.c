/* QuickScorer (Lucchese, Nardini, Orlando, Perego, Tonellotto and Venturini, "QuickScorer: a fast
 * algorithm to rank documents with additive ensembles of regression trees", SIGIR 2015) for gbm's
 * trees, bit for bit as gbm's own predict.
 *
 * Every split `x < threshold` of every tree is listed per feature, sorted by threshold. For a row,
 * each split it fails (x >= threshold: the row goes right) clears, in its tree's bit vector, the
 * leaves of the split's left subtree; the leftmost leaf still set is the leaf the row reaches (the
 * leaves numbered left to right). Then the leaves' values are added to initF tree by tree, in
 * gbm's order, in double precision: the sum gbm's C code forms. No row holds a missing value
 * (the caller refuses them), so gbm's missing branches are never taken.
 *
 * Rows go in blocks of BLOCK: each row's sum is a chain of dependent additions, and adding the
 * trees of BLOCK rows side by side keeps BLOCK chains in flight instead of one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 8

/* Returns 0, or 1 when memory for the leaf bits ran out. */
int quickscorer_predict(int64_t n_rows, int64_t n_features, const double *rows, int64_t n_trees, double init_f,
                        const int64_t *feature_start, const double *thresholds, const int32_t *split_tree,
                        const uint64_t *split_mask, const int64_t *leaf_start, const double *leaf_values,
                        int n_threads, double *out) {
  int failed = 0;
  const int64_t n_blocks = (n_rows + BLOCK - 1) / BLOCK;
#pragma omp parallel num_threads(n_threads)
  {
    /* [row of the block][tree]: a row's bits (one per tree) stay in the first-level cache while its
     * splits clear them */
    uint64_t *leaves = malloc((size_t)n_trees * BLOCK * sizeof(uint64_t));
    if (leaves == NULL) {
#pragma omp atomic write
      failed = 1;
    } else {
#pragma omp for schedule(static)
      for (int64_t block = 0; block < n_blocks; block++) {
        const int64_t first = block * BLOCK;
        const int64_t count = n_rows - first < BLOCK ? n_rows - first : BLOCK;
        memset(leaves, 0xff, (size_t)n_trees * BLOCK * sizeof(uint64_t));
        for (int64_t r = 0; r < count; r++) {
          const double *x = rows + (first + r) * n_features;
          uint64_t *row_leaves = leaves + r * n_trees;
          for (int64_t f = 0; f < n_features; f++) {
            /* the splits the row fails: thresholds up to its value (a binary search), then masks only */
            const double value = x[f];
            int64_t low = feature_start[f], high = feature_start[f + 1];
            while (low < high) {
              const int64_t middle = low + (high - low) / 2;
              if (value < thresholds[middle]) {
                high = middle;
              } else {
                low = middle + 1;
              }
            }
            for (int64_t k = feature_start[f]; k < low; k++) {
              row_leaves[split_tree[k]] &= split_mask[k];
            }
          }
        }
        double sum[BLOCK];
        for (int r = 0; r < BLOCK; r++) {
          sum[r] = init_f;
        }
        for (int64_t t = 0; t < n_trees; t++) {
          const double *values = leaf_values + leaf_start[t];
          for (int r = 0; r < BLOCK; r++) {
            sum[r] += values[__builtin_ctzll(leaves[r * n_trees + t])];
          }
        }
        for (int64_t r = 0; r < count; r++) {
          out[first + r] = sum[r];
        }
      }
      free(leaves);
    }
  }
  return failed;
}
