# Reference outputs of R's mclust for bayesmix's 14 Gaussian covariance models.
#
#   Rscript validation/mclust_reference.R                  # everything, about 1 minute
#   Rscript validation/mclust_reference.R --no-bootstrap   # skip the Old Faithful bootstraps
#
# Run from the repository root; reads bayesmix/data/*.csv, writes validation/mclust_reference/.
# See validation/mclust_reference/README.md for the files and their conventions.

suppressPackageStartupMessages(library(mclust))
out <- "validation/mclust_reference"
dir.create(out, showWarnings = FALSE, recursive = TRUE)
G <- 1:9
do_bootstrap <- !("--no-bootstrap" %in% commandArgs(trailingOnly = TRUE))

# --- writers: doubles round-trip exact (%.15g where that is exact, else %.17g), NA as NA ---
fmt <- function(x) {
  s <- sprintf("%.15g", x)
  ifelse(is.na(x), NA, ifelse(suppressWarnings(as.numeric(s)) == x, s, sprintf("%.17g", x)))
}
full <- function(df) {
  for (k in seq_along(df)) if (is.double(df[[k]])) df[[k]] <- fmt(df[[k]])
  df
}
wcsv <- function(df, file) write.csv(full(df), file.path(out, file), row.names = FALSE, quote = FALSE)
# JSON with round-trip exact numbers (jsonlite stops at 15 digits).  Vectors marked I() and arrays
# (nested, first index outermost) are always JSON arrays; other length-1 values are scalars.
nest <- function(a) {
  dm <- dim(a)
  if (length(dm) <= 1) return(I(as.vector(a)))
  lapply(seq_len(dm[1]), function(i) {
    idx <- rep(list(TRUE), length(dm)); idx[[1]] <- i
    nest(array(do.call(`[`, c(list(a), idx, drop = FALSE)), dm[-1]))
  })
}
to_json <- function(x, ind = "") {
  if (is.list(x) && !is.null(names(x)))
    return(paste0("{\n", paste0(ind, '  "', names(x), '": ',
                                vapply(x, to_json, "", ind = paste0(ind, "  ")), collapse = ",\n"),
                  "\n", ind, "}"))
  if (is.list(x)) return(paste0("[", paste(vapply(x, to_json, "", ind = ind), collapse = ", "), "]"))
  if (!is.null(dim(x))) return(to_json(nest(x), ind))
  v <- if (is.character(x)) paste0('"', x, '"')
       else if (is.double(x)) ifelse(is.na(x), "null", fmt(x))
       else ifelse(is.na(x), "null", as.character(x))
  if (length(x) == 1 && !inherits(x, "AsIs")) v else paste0("[", paste(v, collapse = ", "), "]")
}
wjson <- function(x, file) writeLines(to_json(x), file.path(out, file))
table_df <- function(b) {         # mclustBIC / mclustICL / matrix with rows G -> data frame
  m <- matrix(as.numeric(b), nrow = nrow(b), dimnames = dimnames(b))
  data.frame(G = as.integer(rownames(b)), m, check.names = FALSE)
}

# --- data ---------------------------------------------------------------------------------
datasets <- list(
  faithful = as.matrix(read.csv("bayesmix/data/old_faithful.csv")[, c("eruptions", "waiting")]),
  acidity  = read.csv("bayesmix/data/acidity.csv")$acidity,
  galaxies = read.csv("bayesmix/data/galaxies.csv")$velocity_kms / 1000,
  iris     = as.matrix(read.csv("bayesmix/data/iris.csv")[, 1:4])
)

# Parameters of a fitted Mclust model, component first: mean[k][j], sigma[k][i][j].
fit_json <- function(mod) {
  d <- mod$d; Gk <- mod$G; p <- mod$parameters
  sigma <- if (d == 1) array(rep_len(p$variance$sigmasq, Gk), c(Gk, 1, 1))
           else aperm(p$variance$sigma, c(3, 1, 2))
  list(model = mod$modelName, G = Gk, n = mod$n, d = d, loglik = mod$loglik, bic = mod$bic,
       icl = icl(mod), df = mod$df, pro = I(as.numeric(p$pro)),
       mean = t(matrix(p$mean, nrow = d)), sigma = sigma,
       classification = I(as.integer(mod$classification)))
}

hc_df <- function(h) {            # initial partition + hclass for G = 1..9
  cl <- hclass(h, G)
  data.frame(init = as.integer(attr(h, "initialPartition")),
             setNames(as.data.frame(cl), paste0("G", colnames(cl))))
}
merges_df <- function(h, variant) data.frame(variant = variant, step = seq_len(ncol(h)),
                                             i = as.integer(h[1, ]), j = as.integer(h[2, ]))

for (name in names(datasets)) {
  X <- datasets[[name]]
  d <- NCOL(X); n <- NROW(X)
  models <- if (d == 1) c("E", "V") else mclust.options("emModelNames")
  cat(sprintf("== %s (n = %d, d = %d)\n", name, n, d))

  bic <- mclustBIC(X, G = G)
  icl_tab <- mclustICL(X, G = G)   # (its x = argument takes an mclustICL object, not a BIC table)
  wcsv(table_df(bic), paste0(name, "_bic.csv"))
  wcsv(table_df(icl_tab), paste0(name, "_icl.csv"))
  wcsv(table_df(attr(bic, "returnCodes")), paste0(name, "_returncodes.csv"))

  # log-likelihood of every cell, refitted from the same start as the BIC table
  ll <- sapply(colnames(bic), function(m) sapply(G, function(g) {
    if (is.na(bic[g, m])) return(NA_real_)
    fit <- Mclust(X, G = g, modelNames = m, x = bic, verbose = FALSE)
    if (is.null(fit)) NA_real_ else fit$loglik
  }))
  rownames(ll) <- G
  # consistency: BIC = 2 loglik - npar log(n)
  np <- sapply(colnames(bic), function(m) sapply(G, function(g) nMclustParams(m, d, g)))
  rownames(np) <- G
  stopifnot(isTRUE(all.equal(2 * ll - np * log(n), matrix(as.numeric(bic), nrow(bic)),
                             check.attributes = FALSE)))
  wcsv(table_df(ll), paste0(name, "_loglik.csv"))
  wcsv(data.frame(G = G, matrix(as.integer(np), nrow(np), dimnames = dimnames(np)),
                  check.names = FALSE), paste0(name, "_nparams.csv"))

  best <- Mclust(X, x = bic, verbose = FALSE)
  wjson(fit_json(best), paste0(name, "_params.json"))
  ib <- which(icl_tab == max(icl_tab, na.rm = TRUE), arr.ind = TRUE)[1, ]
  best_icl <- Mclust(X, G = G[ib[1]], modelNames = colnames(icl_tab)[ib[2]], x = bic, verbose = FALSE)
  wjson(fit_json(best_icl), paste0(name, "_params_icl.json"))
  cat(sprintf("   best BIC: %s,%d BIC %.7f loglik %.7f | best ICL: %s,%d ICL %.7f\n",
              best$modelName, best$G, best$bic, best$loglik,
              best_icl$modelName, best_icl$G, icl(best_icl)))

  # hierarchical clustering starts.  mclustBIC uses hc(modelName = hcModelName, use = hcUse)
  # for d > 1 and quantile classes (mclust:::qclass) for d = 1.  hc "EII" segfaults on 1-D
  # data in mclust 6.0.0, so its 1-D analogue "E" is used there.
  h_def <- hc(X, modelName = if (d == 1) "V" else mclust.options("hcModelName"),
              use = mclust.options("hcUse"))
  if (d > 1) stopifnot(identical(unclass(h_def)[, ], unclass(attr(bic, "initialization")$hcPairs)[, ]))
  h_eii <- hc(X, modelName = if (d == 1) "E" else "EII", use = "VARS")
  h_vvv <- hc(X, modelName = if (d == 1) "V" else "VVV", use = "VARS")
  wcsv(hc_df(h_def), paste0(name, "_hc.csv"))
  wcsv(hc_df(h_eii), paste0(name, "_hc_eii.csv"))
  wcsv(hc_df(h_vvv), paste0(name, "_hc_vvv_vars.csv"))
  wcsv(rbind(merges_df(h_def, "default"), merges_df(h_eii, "eii"), merges_df(h_vvv, "vvv_vars")),
       paste0(name, "_hc_merges.csv"))
  if (d == 1)
    wcsv(setNames(as.data.frame(sapply(G, function(g) as.integer(mclust:::qclass(X, g)))),
                  paste0("G", G)), paste0(name, "_qclass.csv"))
}

# --- Old Faithful bootstraps ---------------------------------------------------------------
if (do_bootstrap) {
  X <- datasets$faithful
  set.seed(1)
  t_lrt <- system.time(lrt <- mclustBootstrapLRT(X, modelName = "EEE", maxG = 3, nboot = 999,
                                                 verbose = FALSE))[["elapsed"]]
  wjson(list(call = "set.seed(1); mclustBootstrapLRT(faithful, modelName = 'EEE', maxG = 3, nboot = 999)",
             G_null = I(lrt$G), G_alt = I(lrt$G + 1L), obs = I(lrt$obs), p_value = I(lrt$p.value),
             boot_mean = I(colMeans(lrt$boot)),
             boot_q95 = I(unname(apply(lrt$boot, 2, quantile, 0.95))),
             nboot = 999L, seed = 1L),
        "faithful_bootstrap_lrt.json")
  cat(sprintf("bootstrap LRT: %.1f s; obs %s; p %s\n", t_lrt,
              paste(signif(lrt$obs, 8), collapse = " "), paste(lrt$p.value, collapse = " ")))

  mod <- Mclust(X, G = 3, modelNames = "EEE", verbose = FALSE)
  cf <- function(a) {             # component first: [d, G] -> [k][j]; [d, d, G] -> [k][i][j]
    if (length(dim(a)) == 2) t(a) else if (length(dim(a)) == 3) aperm(a, c(3, 1, 2)) else a
  }
  res <- list(model = "EEE", G = 3L, nboot = 999L, seed = 1L, conf_level = 0.95,
              fit = fit_json(mod)[c("pro", "mean", "sigma", "loglik")])
  for (type in c("bs", "wlbs", "pb")) {
    set.seed(1)
    t_b <- system.time(b <- MclustBootstrap(mod, nboot = 999, type = type, verbose = FALSE))[["elapsed"]]
    se <- summary(b, what = "se"); ci <- summary(b, what = "ci", conf.level = 0.95)
    res[[type]] <- list(
      se = list(pro = I(as.numeric(se$pro)), mean = cf(se$mean), variance = cf(se$variance)),
      # mclust's percentile intervals cover the diagonal variances only: variance[k][j]
      ci_lower = list(pro = I(as.numeric(ci$pro[1, ])), mean = cf(ci$mean[1, , ]),
                      variance = cf(ci$variance[1, , ])),
      ci_upper = list(pro = I(as.numeric(ci$pro[2, ])), mean = cf(ci$mean[2, , ]),
                      variance = cf(ci$variance[2, , ])))
    cat(sprintf("MclustBootstrap %s: %.1f s\n", type, t_b))
  }
  wjson(res, "faithful_bootstrap_se.json")
}

# --- versions -----------------------------------------------------------------------------
writeLines(c(sprintf("mclust %s", packageVersion("mclust")),
             sprintf("mclust.options: hcModelName = %s, hcUse = %s",
                     mclust.options("hcModelName"), mclust.options("hcUse")),
             "", capture.output(sessionInfo())), file.path(out, "VERSIONS.txt"))
