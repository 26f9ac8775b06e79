#pragma once
// The linear algebra the extrapolators share: the leading singular triple of a matrix (LAPACK's
// symmetric eigensolver on the smaller Gram matrix), sign alignment of a sequence of them,
// one-component PLS, and the least-squares line. FLOPs are counted so an extrapolator can report
// its own cost.
#include <cstdint>
#include <vector>

namespace frugal {

// M ~= sigma u v^T with |u| = |v| = 1: the leading singular triple. sigma = 0 (u, v zero) for a zero matrix.
struct Rank1 {
  double sigma = 0;
  std::vector<float> u, v;
};

// M (rows x cols, row-major). Computed through the Gram matrix of the smaller side, G = M^T M
// (or M M^T), whose top eigenpair (LAPACK dsyevr) is (sigma^2, v) (or (sigma^2, u)); the other
// vector is M v / sigma. Adds the FLOPs spent to *flops if given.
Rank1 rank1_svd(const float* M, int64_t rows, int64_t cols, double* flops = nullptr);

// The top eigenpair of the symmetric n x n matrix A (row-major, double): A e = lambda e, |e| = 1.
double top_eigenpair(const std::vector<double>& A, int n, std::vector<double>& e);

// A singular triple's sign is arbitrary: (sigma, u, v) and (sigma, -u, -v) are the same matrix, and
// the SVD may pick either at each checkpoint. Flips each triple after the first so that it points
// the way of its predecessor (u.u_prev + v.v_prev >= 0). Returns how many were flipped.
int align_signs(std::vector<Rank1>& sequence);

// One-component partial least squares of y (n) on the rows of X (n x p): t = (X - mean) w with
// w = X_c^T y_c / |X_c^T y_c|, y ~= y_mean + q t, and the loading p_load = X_c^T t / (t^T t), so
// that x ~= x_mean + t p_load.
struct Pls1 {
  std::vector<double> x_mean, w, loading;
  double y_mean = 0, q = 0;
  double predict(const float* x) const;  // y at a new row x
  // The row whose latent score reaches y: x_mean + ((y - y_mean) / q) loading.
  std::vector<double> solve(double y) const;
};
Pls1 pls1_fit(const std::vector<double>& X, int n, int p, const std::vector<double>& y);

// Ordinary least squares y ~= a + b x over the points; a single point (or equal x's) gives b = 0.
struct Line {
  double a = 0, b = 0;
  double at(double x) const { return a + b * x; }
};
Line least_squares_line(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace frugal
