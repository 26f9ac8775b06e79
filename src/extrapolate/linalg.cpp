#include "extrapolate/linalg.hpp"

#include <cblas.h>

#include <cmath>

#include "core/error.hpp"

extern "C" {
void dsyevr_(const char* jobz, const char* range, const char* uplo, const int* n, double* a, const int* lda,
             const double* vl, const double* vu, const int* il, const int* iu, const double* abstol, int* m, double* w,
             double* z, const int* ldz, int* isuppz, double* work, const int* lwork, int* iwork, const int* liwork,
             int* info);
}

namespace frugal {

double top_eigenpair(const std::vector<double>& A, int n, std::vector<double>& e) {
  FRUGAL_CHECK(n >= 1 && A.size() == size_t(n) * size_t(n), "top_eigenpair: A must be n x n");
  std::vector<double> a = A;  // dsyevr overwrites its input (row-major symmetric = column-major)
  const char jobz = 'V', range = 'I', uplo = 'U';
  const int il = n, iu = n;  // the largest eigenvalue only
  const double vl = 0, vu = 0, abstol = 0;
  int m = 0, info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  std::vector<double> w(static_cast<size_t>(n));  // all n: dsyevr uses it as workspace
  std::vector<double> z(static_cast<size_t>(n));
  std::vector<int> isuppz(2);
  dsyevr_(&jobz, &range, &uplo, &n, a.data(), &n, &vl, &vu, &il, &iu, &abstol, &m, w.data(), z.data(), &n, isuppz.data(),
          &work_query, &lwork, &iwork_query, &liwork, &info);
  lwork = int(work_query), liwork = iwork_query;
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(liwork));
  dsyevr_(&jobz, &range, &uplo, &n, a.data(), &n, &vl, &vu, &il, &iu, &abstol, &m, w.data(), z.data(), &n, isuppz.data(),
          work.data(), &lwork, iwork.data(), &liwork, &info);
  FRUGAL_CHECK(info == 0 && m == 1, "LAPACK dsyevr failed (info ", info, ")");
  e = std::move(z);
  return w[0];
}

Rank1 rank1_svd(const float* M, int64_t rows, int64_t cols, double* flops) {
  FRUGAL_CHECK(rows >= 1 && cols >= 1, "rank1_svd: empty matrix");
  // The Gram matrix of the smaller side: (cols x cols) = M^T M when rows >= cols.
  const bool tall = rows >= cols;
  const int n = int(tall ? cols : rows);
  const int64_t k = tall ? rows : cols;
  std::vector<float> g(static_cast<size_t>(n) * size_t(n));
  // ssyrk fills the upper triangle; mirrored into a full double matrix for LAPACK.
  if (tall) cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, int(k), 1.0f, M, int(cols), 0.0f, g.data(), n);
  else cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, int(k), 1.0f, M, int(cols), 0.0f, g.data(), n);
  std::vector<double> G(g.size());
  for (int i = 0; i < n; i++)
    for (int j = i; j < n; j++) G[size_t(i) * n + j] = G[size_t(j) * n + i] = g[size_t(i) * n + j];
  std::vector<double> e;
  const double lambda = top_eigenpair(G, n, e);
  if (flops) *flops += double(n) * double(n + 1) * double(k) + 10.0 * double(n) * n * n / 3.0 + 2.0 * double(rows) * cols;
  Rank1 r;
  if (!(lambda > 0)) {  // a zero matrix (or rounding of one): no direction
    r.u.assign(size_t(rows), 0.0f), r.v.assign(size_t(cols), 0.0f);
    return r;
  }
  r.sigma = std::sqrt(lambda);
  // The other side: M v / sigma (tall) or M^T u / sigma, in double for accuracy, then normalised
  // (the eigenvector's residual error would otherwise show in its length).
  std::vector<double> other(static_cast<size_t>(k), 0.0);
  if (tall) {
    for (int64_t i = 0; i < rows; i++) {
      double s = 0;
      for (int64_t j = 0; j < cols; j++) s += double(M[i * cols + j]) * e[size_t(j)];
      other[size_t(i)] = s;
    }
  } else {
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) other[size_t(j)] += double(M[i * cols + j]) * e[size_t(i)];
  }
  double norm = 0;
  for (double x : other) norm += x * x;
  norm = std::sqrt(norm);
  r.sigma = norm;  // |M v| = sigma exactly for the true singular vector; more accurate than sqrt(lambda)
  std::vector<float> small(e.begin(), e.end()), big(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; i++) big[size_t(i)] = static_cast<float>(other[size_t(i)] / norm);
  if (tall) r.u = std::move(big), r.v = std::move(small);
  else r.u = std::move(small), r.v = std::move(big);
  return r;
}

int align_signs(std::vector<Rank1>& sequence) {
  int flipped = 0;
  for (size_t i = 1; i < sequence.size(); i++) {
    const Rank1& prev = sequence[i - 1];
    Rank1& cur = sequence[i];
    double dot = 0;
    for (size_t j = 0; j < cur.u.size(); j++) dot += double(cur.u[j]) * prev.u[j];
    for (size_t j = 0; j < cur.v.size(); j++) dot += double(cur.v[j]) * prev.v[j];
    if (dot < 0) {
      for (float& x : cur.u) x = -x;
      for (float& x : cur.v) x = -x;
      flipped++;
    }
  }
  return flipped;
}

double Pls1::predict(const float* x) const {
  double t = 0;
  for (size_t j = 0; j < w.size(); j++) t += (double(x[j]) - x_mean[j]) * w[j];
  return y_mean + q * t;
}

std::vector<double> Pls1::solve(double y) const {
  FRUGAL_CHECK(q != 0, "PLS: the fitted slope is zero (the accuracy does not vary along the trajectory), so no "
               "update reaches a target accuracy");
  const double t = (y - y_mean) / q;
  std::vector<double> x(x_mean.size());
  for (size_t j = 0; j < x.size(); j++) x[j] = x_mean[j] + t * loading[j];
  return x;
}

Pls1 pls1_fit(const std::vector<double>& X, int n, int p, const std::vector<double>& y) {
  FRUGAL_CHECK(n >= 2 && X.size() == size_t(n) * size_t(p) && y.size() == size_t(n), "PLS needs at least 2 rows");
  Pls1 m;
  m.x_mean.assign(size_t(p), 0.0), m.w.assign(size_t(p), 0.0), m.loading.assign(size_t(p), 0.0);
  for (int i = 0; i < n; i++) {
    m.y_mean += y[size_t(i)] / n;
    for (int j = 0; j < p; j++) m.x_mean[size_t(j)] += X[size_t(i) * p + j] / n;
  }
  double wn = 0;
  for (int j = 0; j < p; j++) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (X[size_t(i) * p + j] - m.x_mean[size_t(j)]) * (y[size_t(i)] - m.y_mean);
    m.w[size_t(j)] = s, wn += s * s;
  }
  wn = std::sqrt(wn);
  if (wn == 0) return m;  // y constant (or X constant): q stays 0
  for (double& x : m.w) x /= wn;
  std::vector<double> t(static_cast<size_t>(n), 0.0);
  double tt = 0, ty = 0;
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < p; j++) t[size_t(i)] += (X[size_t(i) * p + j] - m.x_mean[size_t(j)]) * m.w[size_t(j)];
    tt += t[size_t(i)] * t[size_t(i)], ty += t[size_t(i)] * (y[size_t(i)] - m.y_mean);
  }
  m.q = ty / tt;
  for (int j = 0; j < p; j++) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (X[size_t(i) * p + j] - m.x_mean[size_t(j)]) * t[size_t(i)];
    m.loading[size_t(j)] = s / tt;
  }
  return m;
}

Line least_squares_line(const std::vector<double>& x, const std::vector<double>& y) {
  FRUGAL_CHECK(!x.empty() && x.size() == y.size(), "least_squares_line: need points");
  const double n = double(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); i++) mx += x[i] / n, my += y[i] / n;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); i++) sxx += (x[i] - mx) * (x[i] - mx), sxy += (x[i] - mx) * (y[i] - my);
  Line l;
  l.b = sxx > 0 ? sxy / sxx : 0.0;
  l.a = my - l.b * mx;
  return l;
}

}  // namespace frugal
